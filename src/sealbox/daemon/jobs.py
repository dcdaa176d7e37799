"""The daemon's jobs and how each one runs: a child ``sealbox`` process per run.

A child process per run keeps the daemon small and alive whatever a job does (a crash, a leak, a
library that hangs); the child is the same command an operator types, so it emits the same alerts
and leaves the same traces. The daemon hands it the configuration it validated on stdin
(``--config /dev/stdin``): a config file edited but not yet reloaded (SIGHUP) never reaches a run.
Stopping: SIGINT, which every command treats as Ctrl-C (nothing partial is published), then
SIGKILL after ``stop_timeout_seconds``.

The sampled ``check --read-data-subset`` decrypts with ``[daemon] check_identity_file``, a key that
sits on the appliance for every scheduled check. It must be a repository-only key (listed in
``keys.repository_recipients``): a key that also opens the secrets backups (the master key, one of
``keys.recipients``) would leave every secret one file away from whoever reads the appliance's
disk. :func:`check_identity_problem` is asked by ``sealbox config check``, by the daemon when it
starts or reloads (:func:`jobs_of`) and before each check run (:func:`argv_for`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import orjson

from sealbox.config.models import Config
from sealbox.errors import ConfigError, SealboxError
from sealbox.keys.material import from_identity_file
from sealbox.keys.store import Keystore

__all__ = [
    "CHECK_IDENTITY_KEY",
    "JOBS",
    "Job",
    "JobOutcome",
    "argv_for",
    "check_identity_problem",
    "copies_after",
    "jobs_of",
    "outcome_of",
    "require_check_identity",
]

CHECK_IDENTITY_KEY = "daemon.check_identity_file"

JOBS = (
    "secrets",
    "system",
    "recordings",
    "probe",
    "check",
    "copy",
    "drill-system",
    "drill-recordings",
)
# [[copies]] without a schedule run after each backup they copy, and once a day to retry.
COPY_RETRY_SCHEDULE = "17 4 * * *"


@dataclass(frozen=True)
class Job:
    name: str
    schedule: str
    catch_up_never_run: bool  # run at start when it never ran here (backups: yes; check: no)


@dataclass
class JobOutcome:
    result: str  # success | failed | interrupted
    bytes: int | None = None
    files: int | None = None
    snapshot: str | None = None
    error: str | None = None


def check_identity_problem(config: Config) -> str | None:
    """Why ``check_identity_file`` may not be used, or None (also when it is not set)."""

    path = config.daemon.check_identity_file
    if path is None:
        return None
    try:
        recipients = from_identity_file(path).recipients
    except SealboxError as exc:
        return str(exc)
    # Every key that opens secrets backups: the keystore's master keys (earlier ones still open
    # the backups made before a ceremony) and keys.recipients.
    keystore = Keystore(config.appliance.state_dir)
    opens_secrets = {r.recipient: "a master key" for r in keystore.records()}
    opens_secrets |= {r: "a key listed in keys.recipients" for r in config.keys.recipients}
    repository_only = set(config.keys.repository_recipients)
    for recipient in recipients:
        if recipient in opens_secrets:
            what = opens_secrets[recipient]
            return (
                f"{path} holds {what}, which opens the secrets backups: give the scheduled check"
                " a repository-only key (listed in keys.repository_recipients)"
            )
        if recipient not in repository_only:
            return (
                f"{path}: its recipient {recipient[:16]}... is not in keys.repository_recipients,"
                " so it opens no repository"
            )
    return None


def require_check_identity(config: Config) -> None:
    """ConfigError naming ``daemon.check_identity_file`` if :func:`check_identity_problem`."""
    problem = check_identity_problem(config)
    if problem is not None:
        raise ConfigError(f"{CHECK_IDENTITY_KEY}: {problem}")


def jobs_of(config: Config) -> dict[str, Job]:
    """The jobs a config schedules; ConfigError for a check identity that must not be used."""
    require_check_identity(config)
    found: dict[str, Job] = {}
    for kind in ("secrets", "system", "recordings"):
        section: Any = getattr(config, kind)
        if section is not None:
            found[kind] = Job(kind, section.schedule, True)
    if config.destinations:
        found["probe"] = Job("probe", config.probes.schedule, True)
    if config.daemon.check_schedule and (config.system or config.recordings):
        found["check"] = Job("check", config.daemon.check_schedule, False)
    if config.copies:
        explicit = [c.schedule for c in config.copies if c.schedule]
        found["copy"] = Job("copy", explicit[0] if explicit else COPY_RETRY_SCHEDULE, False)
    drills = config.drills
    if drills is not None and drills.schedule:  # a recovery host
        if drills.identity_file is None:
            raise ConfigError("drills.schedule needs drills.identity_file (the key drills use)")
        for kind in drills.kinds:
            found[f"drill-{kind}"] = Job(f"drill-{kind}", drills.schedule, False)
    return found


def copies_after(config: Config, job: str) -> bool:
    """Whether a finished backup of ``job`` triggers a copy (a [[copies]] of that kind with no
    schedule of its own)."""
    return any(c.schedule is None and job in c.kinds for c in config.copies)


def argv_for(config: Config, job: str) -> list[str]:
    base = [sys.executable, "-m", "sealbox", "--config", "/dev/stdin"]
    if job in ("secrets", "system", "recordings"):
        return [*base, "backup", job, "--json"]
    if job == "probe":
        return [*base, "probe", "--json"]
    if job == "check":
        d = config.daemon
        extra: list[str] = []
        if d.check_read_data_subset and d.check_identity_file:
            require_check_identity(config)  # the file may have changed since the daemon started
            extra = ["--read-data-subset", d.check_read_data_subset]
            extra += ["--identity", str(d.check_identity_file)]
        return [*base, "check", "--json", *extra]
    if job == "copy":
        return [*base, "copy", "--json"]
    if job in ("drill-system", "drill-recordings") and config.drills is not None:
        identity = config.drills.identity_file
        if identity is None:
            raise ConfigError("drills.schedule needs drills.identity_file (the key drills use)")
        return [*base, "drill", job.removeprefix("drill-"), "--json", "--identity", str(identity)]
    raise ValueError(f"unknown job {job!r}")


def _error_line(stderr: bytes) -> str | None:
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("sealbox: error: "):
            return line.removeprefix("sealbox: error: ")
        if line.startswith("sealbox: "):
            return line.removeprefix("sealbox: ")
    return lines[-1][:500] if lines else None


def outcome_of(job: str, returncode: int, stdout: bytes, stderr: bytes) -> JobOutcome:
    """Read what a finished child says: its JSON report and, on failure, its one-line error."""
    if returncode in (130, -2, -9, -15):
        return JobOutcome("interrupted", error=_error_line(stderr) or "stopped")
    doc: Any = None
    try:
        doc = orjson.loads(stdout) if stdout.strip() else None
    except orjson.JSONDecodeError:
        doc = None
    out = JobOutcome("success" if returncode == 0 else "failed")
    if returncode != 0:
        out.error = _error_line(stderr) or f"exit code {returncode}"
    if isinstance(doc, dict):
        if job == "secrets":
            out.bytes, out.files, out.snapshot = doc.get("size"), doc.get("total"), doc.get("file")
        elif job == "system":
            out.bytes, out.files = doc.get("bytes_added"), doc.get("files")
            out.snapshot = doc.get("snapshot")
        elif job == "recordings":
            out.bytes, out.files, out.snapshot = (
                doc.get("bytes"),
                doc.get("stored"),
                doc.get("snapshot"),
            )
        elif job.startswith("drill-"):
            out.snapshot = doc.get("snapshot")
            out.files = len(doc.get("checks") or [])  # checks made
    elif isinstance(doc, list) and job == "probe":
        out.files = len(doc)  # destinations probed
    elif isinstance(doc, list) and job == "copy":
        copied = [d for d in doc if isinstance(d, dict)]
        out.bytes = sum(int(d.get("bytes") or 0) for d in copied)
        out.files = sum(int(d.get("objects") or 0) for d in copied)
    return out
