"""The browser opener: one offline HTML file that opens a secrets backup (``opener/`` builds it).

The file ships inside the package (``breakglass/opener.html``), built from ``opener/`` with
``make opener``, so ``pip install`` needs no JavaScript tool chain. Its SHA-256 is printed on the
custodian sheets; ``sealbox breakglass opener --verify FILE`` checks a copy against this
Sealbox's; every secrets backup run leaves a copy at the destination, named by its digest.
"""

from __future__ import annotations

import hashlib
import os
from functools import cache
from importlib import resources
from pathlib import Path

from sealbox.backends.base import Backend
from sealbox.errors import CorruptFileError, OutputError

__all__ = [
    "MAX_OPENER",
    "OpenerCheck",
    "destination_name",
    "opener_bytes",
    "opener_sha256",
    "place_beside",
    "verify_copy",
    "write_opener",
]

MAX_OPENER = 16 << 20  # a copy larger than this is not our opener (ours is well under 1 MiB)


@cache
def opener_bytes() -> bytes:
    """The opener as this Sealbox ships it."""
    try:
        return resources.files("sealbox.breakglass").joinpath("opener.html").read_bytes()
    except OSError as exc:  # a broken install: the package data is missing
        raise CorruptFileError(
            "this Sealbox has no browser opener (breakglass/opener.html is missing: reinstall)"
        ) from exc


def opener_sha256() -> str:
    return hashlib.sha256(opener_bytes()).hexdigest()


def destination_name() -> str:
    """The opener's name at a destination: its digest in the name, so an append-only destination
    keeps one copy per opener version and a copy is never replaced."""
    return f"sealbox-opener-{opener_sha256()[:16]}.html"


def write_opener(out: Path, *, force: bool = False) -> str:
    """Write the opener to ``out`` (never over a file unless ``force``); return its SHA-256."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(out, flags, 0o644)
    except FileExistsError:
        raise OutputError(f"{out} exists already (use --force to replace it)") from None
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {exc.strerror}") from exc
    with os.fdopen(fd, "wb") as handle:
        handle.write(opener_bytes())
    return opener_sha256()


class OpenerCheck:
    """The result of ``--verify``: the copy's digest and whether it is this Sealbox's opener."""

    def __init__(self, path: Path, sha256: str) -> None:
        self.path, self.sha256 = path, sha256
        self.expected = opener_sha256()

    @property
    def ok(self) -> bool:
        return self.sha256 == self.expected


def verify_copy(path: Path) -> OpenerCheck:
    """The SHA-256 of a copy of the opener, compared with the one this Sealbox ships."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_OPENER + 1)
    except FileNotFoundError:
        raise CorruptFileError(f"no such file: {path}") from None
    except OSError as exc:
        raise CorruptFileError(f"cannot read {path}: {exc.strerror}") from exc
    if len(data) > MAX_OPENER:
        raise CorruptFileError(f"{path} is larger than {MAX_OPENER:,} bytes: not a Sealbox opener")
    return OpenerCheck(path, hashlib.sha256(data).hexdigest())


def place_beside(backend: Backend) -> str | None:
    """Put the opener at a destination (beside its secrets backups) unless it is there already.
    Returns a warning when that fails: a missing opener must never fail a backup."""
    name = destination_name()
    try:
        if any(info.name == name for info in backend.list(name)):
            return None
        backend.put(name, opener_bytes(), exclusive=True)
        backend.flush()
    except Exception as exc:  # best effort, said once per run
        return f"could not place the browser opener {name} at the destination: {exc}"
    return None
