"""Use case: restore drills on a recovery host (``sealbox drill system|recordings``).

A drill proves that the newest *authentic* backup restores, then writes a signed receipt to the
destination (:mod:`sealbox.repo.drills`) that the appliance reads without any private key.

``system``: the newest verified system snapshot is restored into a private scratch directory;
every file read back from the disk afterwards must have the snapshot's digest; every database
dump is streamed from the repository into a throwaway database (a ``--scratch`` server, or a
temporary server instance started here), while the dump's own text is counted (its tables, and
the rows it loads into each, :mod:`sealbox.databases.declared`); the loaded database must hold
every declared table with exactly those rows. SQLite images are opened in memory, checked with
``PRAGMA integrity_check`` and counted. Everything is removed afterwards (``keep``: the scratch
directory stays, for a look).

``recordings``: a sample of the recordings in the signed manifest (newest first, then spread
over the years) is restored and each compared with its recorded digest.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import secrets
import shutil
import socket
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import blake3
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sealbox.alerts.report import check_proven, drill_result
from sealbox.config.models import DRILL_KINDS, Config, DatabaseConfig
from sealbox.crypto import sshsig
from sealbox.crypto.trust import Trust
from sealbox.databases import database_for
from sealbox.databases.declared import MARIADB_TABLE, PG_TABLE, Declared, DumpCounter
from sealbox.databases.mariadb import MariaDB
from sealbox.databases.postgresql import PostgreSQL
from sealbox.databases.scratch import Scratch, parse_scratch, temporary_server
from sealbox.destinations.repos import (
    destination_of,
    open_product_repo,
    open_product_repo_to_read,
)
from sealbox.errors import ConfigError, NotFoundError, OutputError, SealboxError
from sealbox.keys.material import Unlocked
from sealbox.keys.store import Keystore
from sealbox.recordings.restore import restore as restore_recordings
from sealbox.recordings.verify import entries_of
from sealbox.repo import drills
from sealbox.repo.backup import STREAM_DIR
from sealbox.repo.blobs import BlobReader
from sealbox.repo.drills import DrillCheck, DrillReceipt
from sealbox.repo.repository import Repository, Snapshot
from sealbox.repo.restore import Entry, RestorePlan, entry_content, plan_restore, run_restore

__all__ = [
    "DrillOutcome",
    "Proven",
    "alert_unproven",
    "compare_loaded",
    "pinned_drill_signers",
    "proven",
    "run_recordings",
    "run_system",
]

READ = 1 << 20
MAX_LISTED = 20  # problems a check names (the count says how many more)
_DUMP_NAME = re.compile(
    r"^db-\d+-(?:mariadb|postgresql)-(?P<db>[A-Za-z0-9_$][A-Za-z0-9_$-]*)\.sql$"
)


@dataclass
class DrillOutcome:
    receipt: DrillReceipt
    name: str  # the receipt's object name at the destination
    destination: str
    warnings: list[str] = field(default_factory=list)


def _now() -> str:
    """Milliseconds: receipts are ordered by their time, and two drills may end in one second."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _named(problems: list[str]) -> str:
    shown = "; ".join(problems[:MAX_LISTED])
    more = len(problems) - MAX_LISTED
    return shown + (f"; and {more} more" if more > 0 else "")


def _check(name: str, problems: list[str], detail: str, **figures: int) -> DrillCheck:
    if problems:
        return DrillCheck(name, "failed", _named(problems), figures)
    return DrillCheck(name, "passed", detail, figures)


def _destination(config: Config, kind: str, override: str | None) -> str:
    """``--destination``, else ``[drills] destination`` (a recovery host backs nothing up, so it
    has no [system] or [recordings] section to name one), else the kind's own."""
    chosen = override or (config.drills.destination if config.drills else None)
    if chosen is None:
        return destination_of(config, kind, None)
    if chosen not in config.destinations:
        raise ConfigError(f"no destination named {chosen!r} in the config")
    return chosen


def _newest(repo: Repository, kind: str, warnings: list[str]) -> Snapshot:
    snaps = [s for s in repo.snapshots() if s.kind == kind]
    verified = [s for s in snaps if s.verified]
    if not verified:
        raise NotFoundError(
            f"no {kind} snapshot signed by a pinned key to drill"
            + (f" ({len(snaps)} unverified)" if snaps else "")
        )
    newer = [s for s in snaps if s.time > verified[-1].time]
    if newer:
        warnings.append(
            f"{len(newer)} newer {kind} snapshot(s) are not signed by a pinned key:"
            f" drilling {verified[-1].id[:12]}"
        )
    return verified[-1]


def _signing_key(config: Config) -> Ed25519PrivateKey:
    """The drill host's own receipt key (made on its first drill)."""
    return Keystore(config.appliance.state_dir).drill_key()


def _finish(
    config: Config,
    repo: Repository,
    dest: str,
    kind: str,
    snap: Snapshot,
    checks: list[DrillCheck],
    started: float,
    error: str,
    warnings: list[str],
) -> DrillOutcome:
    failed = bool(error) or any(c.result != "passed" for c in checks) or not checks
    receipt = DrillReceipt(
        repo=repo.config.id,
        kind=kind,
        snapshot=snap.id,
        snapshot_time=snap.time,
        time=_now(),
        host=socket.gethostname(),
        result="failed" if failed else "passed",
        checks=tuple(checks),
        seconds=round(time.monotonic() - started, 3),
        error=error,
    )
    drill_result(config, dest, receipt)  # first: a destination refusing the receipt hides nothing
    name, receipt = drills.store(repo, receipt, _signing_key(config))
    return DrillOutcome(receipt, name, dest, warnings)


# --- system --------------------------------------------------------------------------------


def run_system(
    config: Config,
    unlocked: Unlocked,
    trust: Trust,
    *,
    destination: str | None = None,
    scratch: list[str] | None = None,
    workdir: Path | None = None,
    keep: bool = False,
    on_bytes: Callable[[int], None] | None = None,
) -> DrillOutcome:
    servers = {s.type: s for s in (parse_scratch(url) for url in scratch or [])}
    dest = _destination(config, "system", destination)
    started = time.monotonic()
    repo = open_product_repo_to_read(config, dest, unlocked.identities, trust)
    warnings: list[str] = []
    snap = _newest(repo, "system", warnings)
    reader = BlobReader(repo, repo.load_index(), unlocked.identities)
    checks: list[DrillCheck] = []
    error = ""
    place = Path(tempfile.mkdtemp(prefix="sealbox-drill-", dir=workdir))  # 0700
    try:
        plan = plan_restore(repo, reader.index, reader, snap, place / "files")
        dumps = {
            e.path.rsplit("/", 1)[-1]: e
            for e in plan.entries
            if e.path.startswith(STREAM_DIR + "/")
        }
        checks.append(_files(repo, reader, plan, place / "files", on_bytes))
        with contextlib.ExitStack() as stack:
            for meta in sorted(snap.extra.get("databases", []), key=lambda m: m["position"]):
                checks.append(_database(meta, dumps, reader, servers, stack, on_bytes, warnings))
    except SealboxError as exc:
        error = str(exc)
    finally:
        if keep:
            warnings.append(f"scratch directory kept: {place}")
        else:
            shutil.rmtree(place, ignore_errors=True)
    return _finish(config, repo, dest, "system", snap, checks, started, error, warnings)


def _files(
    repo: Repository,
    reader: BlobReader,
    plan: RestorePlan,
    target: Path,
    on_bytes: Callable[[int], None] | None,
) -> DrillCheck:
    """Restore the snapshot's files (not its dumps: they go to the databases) and read every
    one back from the disk against the digest of the snapshot's content."""
    plan.entries = [e for e in plan.entries if not e.path.startswith(STREAM_DIR)]
    files = [e for e in plan.entries if e.node.get("type") == "file"]
    plan.files, plan.bytes = len(files), sum(int(e.node.get("size", 0)) for e in files)
    digests: dict[str, bytes] = {}
    result = run_restore(
        repo, reader.index, reader, plan, target, on_bytes=on_bytes, digests=digests
    )
    problems = list(result.failed)
    checked = size = 0
    for entry in files:
        want = digests.get(entry.path)
        if want is None:
            continue  # a second name of a hard link, or a file the restore named as failed
        got, length = _digest(target, entry.path)
        checked, size = checked + 1, size + length
        if got is None:
            problems.append(f"/{entry.path}: missing after the restore")
        elif got != want or length != int(entry.node.get("size", 0)):
            problems.append(f"/{entry.path}: differs from the snapshot")
    failed = {line.split(":", 1)[0] for line in result.failed}
    for entry in files:  # second names of hard links: there, and the same file as the first
        linked = entry.path not in digests and f"/{entry.path}" not in failed
        if linked and not os.path.lexists(target / entry.path):
            problems.append(f"/{entry.path}: missing after the restore")
    detail = f"{checked:,} files ({size:,} bytes) read back with the snapshot's digests"
    return _check("files", problems, detail, files=len(files), checked=checked, bytes=size)


def _digest(root: Path, path: str) -> tuple[bytes | None, int]:
    try:
        fd = os.open(root / path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None, 0
    digest, length = blake3.blake3(), 0
    with os.fdopen(fd, "rb") as handle:
        while chunk := handle.read(READ):
            digest.update(chunk)
            length += len(chunk)
    return digest.digest(), length


def _database(
    meta: dict[str, Any],
    dumps: dict[str, Entry],
    reader: BlobReader,
    servers: dict[str, Scratch],
    stack: contextlib.ExitStack,
    on_bytes: Callable[[int], None] | None,
    notes: list[str],
) -> DrillCheck:
    label, kind, file = str(meta["label"]), str(meta["type"]), str(meta["file"])
    name = f"database {label}"
    entry = dumps.get(file)
    if entry is None:
        return _check(name, [f"the snapshot has no dump {file}"], "")
    try:
        if kind == "sqlite":
            return _sqlite(name, b"".join(entry_content(reader, entry, on_bytes)))
        if kind not in servers:  # a temporary instance, started once for every dump of its kind
            servers[kind] = stack.enter_context(temporary_server(kind))
        return _server_dump(name, kind, file, servers[kind], entry_content(reader, entry, on_bytes))
    except (SealboxError, ValueError) as exc:
        public, full = _load_error(str(exc))
        notes.append(f"{name}: {full}")  # shown here only, never stored or sent
        return _check(name, [public], "")


# What the receipt (read by the appliance) and the alerts keep of a tool's error: where it
# happened, not the server's words, which a dump can fill with what the drill host can read.
_WHERE = re.compile(
    r"(?P<pg>psql:[^:]{0,40}:\d+: (?:ERROR|FATAL))|(?P<my>ERROR \d+ \([0-9A-Z]{5}\)(?: at line \d+)?)"
)


def _load_error(message: str) -> tuple[str, str]:
    """(what the receipt says, the whole message for the drill host's own output)."""
    found = _WHERE.search(message)
    if found is not None:
        return (
            f"the dump did not load ({found.group(0)}; the message is on the drill host)",
            message,
        )
    if "load failed" in message or "dump failed" in message:
        return "the dump did not load (the message is on the drill host)", message
    return message[:300], message


def _sqlite(name: str, image: bytes) -> DrillCheck:
    problems: list[str] = []
    db = sqlite3.connect(":memory:")
    try:
        db.deserialize(image)
        verdict = [row[0] for row in db.execute("PRAGMA integrity_check")]
        if verdict != ["ok"]:
            problems.append(f"integrity check: {'; '.join(map(str, verdict[:5]))}")
        tables = [
            row[0]
            for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        rows = 0
        for table in tables:
            quoted = '"' + table.replace('"', '""') + '"'
            rows += int(db.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0])  # noqa: S608
    except sqlite3.Error as exc:
        return _check(name, [f"does not open: {exc}"], "")
    finally:
        db.close()
    detail = f"opens, integrity ok, {len(tables)} tables, {rows:,} rows"
    return _check(name, problems, detail, tables=len(tables), rows=rows, bytes=len(image))


def _server_dump(
    name: str, kind: str, file: str, server: Scratch, chunks: Iterator[bytes]
) -> DrillCheck:
    """Load the dump into a throwaway database of ``server`` while counting what it declares;
    compare the tables and their rows; drop the database."""
    match = _DUMP_NAME.match(file)
    if match is None:
        return _check(name, [f"unexpected dump name {file}"], "")
    throwaway = f"sealbox_drill_{secrets.token_hex(6)}"
    handler = database_for(DatabaseConfig(type=kind, url=server.url(throwaway)), 1)  # type: ignore[arg-type]
    assert isinstance(handler, PostgreSQL | MariaDB)
    if handler.exists():
        raise OutputError(f"{server.shown} already has a database {throwaway}")
    counter = DumpCounter(kind)
    size = 0

    def counted() -> Iterator[bytes]:
        nonlocal size
        for chunk in chunks:
            counter.feed(chunk)
            size += len(chunk)
            yield chunk

    try:
        if isinstance(handler, MariaDB):
            handler.load(counted(), replace=False, dumped_as=match.group("db"))
        else:
            handler.load(counted(), replace=False)
        declared = counter.result()
        return compare_loaded(name, handler, declared, server, size)
    finally:
        with contextlib.suppress(SealboxError):
            handler.drop()


def compare_loaded(
    name: str, handler: PostgreSQL | MariaDB, declared: Declared, server: Scratch, size: int
) -> DrillCheck:
    problems = list(declared.problems)
    shape = PG_TABLE if isinstance(handler, PostgreSQL) else MARIADB_TABLE
    present = set(handler.tables())
    countable = [t for t in declared.tables if shape.fullmatch(t) and t in present]
    problems += [f"table {t} missing after the load" for t in declared.tables if t not in present]
    counts = handler.row_counts(countable)
    for table in countable:
        if counts.get(table) != declared.tables[table]:
            problems.append(
                f"table {table}: {counts.get(table)} rows, the dump loads {declared.tables[table]}"
            )
    detail = (
        f"loaded on {server.shown}: {len(declared.tables)} tables, {declared.rows:,} rows,"
        " as the dump declares"
    )
    return _check(
        name, problems, detail, tables=len(declared.tables), rows=declared.rows, bytes=size
    )


# --- recordings ----------------------------------------------------------------------------


def run_recordings(
    config: Config,
    unlocked: Unlocked,
    trust: Trust,
    *,
    destination: str | None = None,
    sample: int = 20,
    workdir: Path | None = None,
    seed: int | None = None,
) -> DrillOutcome:
    """Restore ``sample`` recordings of the signed manifest (the newest, and the rest drawn at
    random over all of them) and compare each with its recorded digest."""
    dest = _destination(config, "recordings", destination)
    started = time.monotonic()
    repo = open_product_repo_to_read(config, dest, unlocked.identities, trust)
    warnings: list[str] = []
    snap = _newest(repo, "recordings", warnings)
    problems: list[str] = []
    entries = entries_of(repo, problems)
    warnings += problems
    checks: list[DrillCheck] = []
    error = ""
    if not entries:
        error = "no recording in a manifest batch signed by a pinned key"
    else:
        newest, rest = entries[-1], entries[:-1]  # in sequence order
        chosen = [
            newest,
            *random.Random(seed).sample(  # noqa: S311 (a sample, not a secret)
                rest, min(len(rest), max(sample - 1, 0))
            ),
        ]
        place = Path(tempfile.mkdtemp(prefix="sealbox-drill-", dir=workdir))
        try:
            reader = BlobReader(repo, repo.load_index(), unlocked.identities)
            result = restore_recordings(reader, chosen, place)
            detail = (
                f"{result.files:,} sampled of {len(entries):,} recordings restored, each with"
                " its recorded digest"
            )
            checks.append(
                _check(
                    "recordings",
                    result.failed,
                    detail,
                    sampled=len(chosen),
                    restored=result.files,
                    total=len(entries),
                    bytes=result.bytes,
                )
            )
        except SealboxError as exc:
            error = str(exc)
        finally:
            shutil.rmtree(place, ignore_errors=True)
    return _finish(config, repo, dest, "recordings", snap, checks, started, error, warnings)


# --- the appliance's side: what was proven ---------------------------------------------------


@dataclass(frozen=True)
class Proven:
    """``status``'s ``proven``: the newest receipt of a kind, and how far the proof reaches."""

    time: str
    snapshot: str
    result: str
    checks: list[dict[str, str]]
    host: str
    signer: str
    last_passed: str | None  # when a drill last passed
    proven_through: str | None  # the time of the newest snapshot a drill proved restorable
    newer_snapshots: int | None  # snapshots of the kind newer than that one (None: not known)
    problems: list[str]  # receipts that could not be read, or were dated in the future

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pinned_drill_signers(config: Config) -> list[Ed25519PublicKey] | None:
    """``[drills] signers``: the drill hosts whose receipts count (None: any sealed receipt)."""
    if config.drills is None or not config.drills.signers:
        return None
    return [sshsig.parse_public_key_line(line) for line in config.drills.signers]


def proven(
    repo: Repository,
    kind: str,
    signers: list[Ed25519PublicKey] | None = None,
    snapshots: list[Snapshot] | None = None,
) -> Proven | None:
    problems: list[str] = []
    found = drills.receipts(repo, kind, signers, problems)
    if not found:
        return None
    newest = found[-1]
    passed = [r for r in found if r.result == "passed"]
    through = max((r.snapshot_time for r in passed), default=None)
    newer = None
    if snapshots is not None and through is not None:
        newer = sum(1 for s in snapshots if s.kind == kind and s.time > through)
    return Proven(
        newest.time,
        newest.snapshot,
        newest.result,
        [{"name": c.name, "result": c.result, "detail": c.detail} for c in newest.checks],
        newest.host,
        newest.signer,
        passed[-1].time if passed else None,
        through,
        newer,
        problems,
    )


def alert_unproven(config: Config) -> None:
    """``drill.not_proven`` for each kind no drill passed for ``[drills] alert_after_days`` (the
    probe's health checks on the appliance); a destination that cannot be read is left to the
    probe's own alert."""
    for kind in DRILL_KINDS:
        part = config.system if kind == "system" else config.recordings
        if part is None:
            continue
        try:
            repo, _ = open_product_repo(config, part.destination, [], create=False)
            found = proven(repo, kind, pinned_drill_signers(config))
        except SealboxError:
            continue
        # The clock runs from the newest snapshot a drill proved, not from the drill: a drill of
        # an old snapshot (the newest hidden from the drill host) proves nothing newer.
        check_proven(config, kind, part.destination, found.proven_through if found else None)
