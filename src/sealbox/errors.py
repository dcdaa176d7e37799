"""The Sealbox error tree.

Every failure a person can cause or meet (bad config, wrong shares, a tampered file, an unreachable
destination) is raised as a subclass of :class:`SealboxError`. The CLI prints ``str(error)`` as one
line and exits with the class's ``exit_code``; a traceback is shown only with ``--debug``.

::

    SealboxError (1)
    ├── ConfigError (3)
    ├── KeyMaterialError (4)
    │   ├── KeyNotSetError (4)
    │   ├── ShareError (4)
    │   └── WrongKeyError (4)
    ├── IntegrityError (5)
    │   ├── SignatureError (5)
    │   └── CorruptFileError (5)
    ├── SourceError (6)
    ├── DestinationError (7)
    │   └── LockedError (7)
    ├── NotFoundError (8)
    ├── PolicyError (9)
    ├── OutputError (10)
    ├── AlertDeliveryError (11)
    ├── RunRefusedError (12)
    └── FencedError (13)

``docs/reference/exit-codes.md`` is generated from these classes (:func:`exit_code_markdown`) and a
test keeps the two in step.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "CorruptFileError",
    "DestinationError",
    "FencedError",
    "IntegrityError",
    "KeyMaterialError",
    "KeyNotSetError",
    "LockedError",
    "NotFoundError",
    "ObjectExistsError",
    "OutputError",
    "PolicyError",
    "SealboxError",
    "ShareError",
    "SignatureError",
    "SourceError",
    "TransientDestinationError",
    "WrongKeyError",
]


class SealboxError(Exception):
    """A failure with a message meant for a person and a documented exit code."""

    exit_code = 1
    summary = "Any other failure Sealbox understood and explained."

    def __init__(self, message: str) -> None:
        # One line: the CLI prints it as is, so a newline would break log parsers.
        super().__init__(" ".join(message.split("\n")))


class ConfigError(SealboxError):
    exit_code = 3
    summary = "The configuration file is missing, unreadable or invalid."


class KeyMaterialError(SealboxError):
    exit_code = 4
    summary = "Key material is missing or wrong: shares, passphrase, identity or master key."


class KeyNotSetError(KeyMaterialError):
    summary = "No master key is set: run `sealbox keys ceremony` or configure `keys.recipients`."


class ShareError(KeyMaterialError):
    summary = "A share is mistyped, duplicated, foreign, or too few shares were given."


class WrongKeyError(KeyMaterialError):
    summary = "The key given is not one the file was made for (or the passphrase is wrong)."


class IntegrityError(SealboxError):
    exit_code = 5
    summary = "Data failed an integrity check: it was damaged or tampered with."


class SignatureError(IntegrityError):
    summary = "A signature is missing, invalid, or made by an unexpected signer."


class CorruptFileError(IntegrityError):
    summary = "A file is truncated, malformed or does not match its manifest."


class SourceError(SealboxError):
    exit_code = 6
    summary = "A secret source (database, KeePass file, JSON file, command) failed."


class DestinationError(SealboxError):
    exit_code = 7
    summary = (
        "A backup destination is unreachable, unwritable or misbehaving: a mounted share that"
        " is full (ENOSPC, EDQUOT), read-only (EROFS), or was unmounted during the run."
    )


class TransientDestinationError(DestinationError):
    summary = (
        "A destination failure that may pass (a dropped connection, a timeout, a server's 5xx"
        " or 429; a mounted share lost: ENOTCONN, EIO, ESTALE, ETIMEDOUT): retried with backoff"
        " before it is reported."
    )


class ObjectExistsError(DestinationError):
    summary = "An exclusive write found the name taken (objects are never replaced)."


class LockedError(DestinationError):
    summary = (
        "The repository is locked by another run (a lock not refreshed for 30 min is taken over)."
    )


class NotFoundError(SealboxError):
    exit_code = 8
    summary = "The named item, file, key or backup does not exist."


class PolicyError(SealboxError):
    exit_code = 9
    summary = "A safety rule refused the operation (e.g. a destination on the appliance)."


class OutputError(SealboxError):
    exit_code = 10
    summary = "An output file could not be written (exists already, or unwritable)."


class AlertDeliveryError(SealboxError):
    exit_code = 11
    summary = (
        "An alert channel (email, syslog) did not accept an event; backups never fail for this."
    )


class RunRefusedError(SealboxError):
    exit_code = 12
    summary = "The daemon refused to start a run: no such job, running already, or stopping."


class FencedError(SealboxError):
    exit_code = 13
    summary = (
        "This cluster node lost its lease to another node while the job ran: it published"
        " nothing (the new leader runs the slot)."
    )


# Exit codes that do not come from a SealboxError class.
OTHER_EXIT_CODES: list[tuple[int, str, str]] = [
    (0, "success", "The command did what was asked."),
    (2, "usage", "The command line is wrong (unknown option, missing argument)."),
    (70, "internal", "A bug in Sealbox: please report it with the output of `--debug`."),
    (130, "interrupted", "Interrupted by Ctrl-C or SIGINT; nothing partial was published."),
]


def _all_classes() -> list[type[SealboxError]]:
    found: list[type[SealboxError]] = []
    todo: list[type[SealboxError]] = [SealboxError]
    while todo:
        cls = todo.pop(0)
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def exit_code_markdown() -> str:
    """Render the exit-code reference page (``docs/reference/exit-codes.md``)."""
    rows: list[tuple[int, str, str]] = list(OTHER_EXIT_CODES)
    # Private subclasses (a backend's own refinement, say) share their parent's row: the page
    # must not depend on which modules happen to be imported.
    rows += [
        (c.exit_code, c.__name__, c.summary)
        for c in _all_classes()
        if not c.__name__.startswith("_")
    ]
    rows.sort(key=lambda r: r[0])  # stable: a parent class stays before its children
    lines = [
        "# Exit codes",
        "",
        "Generated from `src/sealbox/errors.py` by `python -m sealbox.errors`; a test keeps this",
        "page and the code in step. Every failure prints one line on stderr"
        " (`sealbox: error: ...`);",
        "`--debug` adds the traceback.",
        "",
        "| code | error | meaning |",
        "|---:|---|---|",
    ]
    lines += [f"| {code} | `{name}` | {text} |" for code, name, text in rows]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(exit_code_markdown(), end="")
