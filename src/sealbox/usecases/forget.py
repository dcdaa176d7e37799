"""``sealbox forget``: each kind's retention policy, then prune, per destination (the kind's
own, then each [[copies]] target of it).

Secrets backups keep their newest file whatever the policy says; system and recordings snapshots
follow ``repo.forget.decide`` (the count rules, then the age limits, which win); recordings removed by the policy get a signed retention
record, so `recordings verify` tells them from tampering. Append-only destinations are skipped
(the storage host runs ``sealbox repo forget --prune`` with its admin token).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from sealbox.backends.base import append_only
from sealbox.config.models import Config
from sealbox.destinations.repos import destination_backend, open_product_repo
from sealbox.errors import NotFoundError
from sealbox.keys.store import Keystore
from sealbox.recordings.manifest import GENESIS
from sealbox.recordings.verify import entries_of, retention_record
from sealbox.repo.forget import PruneResult, decide, forget_snapshots, prune
from sealbox.repo.holds import held_snapshots
from sealbox.repo.repository import Repository
from sealbox.usecases import secrets_backup

__all__ = ["ForgetReport", "KindOutcome", "run", "session_snapshots"]


@dataclass
class KindOutcome:
    """What retention did to one kind: ``kept`` is None when it was not counted (secrets
    backups outside a dry run, skipped destinations)."""

    forgotten: list[str] = field(default_factory=list)
    kept: list[str] | int | None = None
    skipped: str | None = None  # "append-only"
    # Those the age limits moved, and why: kept by keep_at_least, forgotten by delete_after.
    why: dict[str, str] = field(default_factory=dict)


@dataclass
class ForgetReport:
    dry_run: bool
    kinds: dict[str, KindOutcome] = field(default_factory=dict)
    prunes: dict[str, PruneResult] = field(default_factory=dict)  # by destination

    def to_json(self) -> dict[str, object]:
        """The ``--json`` document: ``dry_run``, one entry per kind, ``prune:<destination>``."""
        doc: dict[str, object] = {"dry_run": self.dry_run}
        for kind, outcome in self.kinds.items():
            entry: dict[str, object] = {"kept": outcome.kept, "forgotten": outcome.forgotten}
            if outcome.skipped:
                entry["skipped"] = outcome.skipped
            if kind.startswith("secrets") and not self.dry_run and outcome.skipped is None:
                entry = {"forgotten": outcome.forgotten}
            if outcome.why:
                entry["why"] = outcome.why
            doc[kind] = entry
        for name, pruned in self.prunes.items():
            doc[f"prune:{name}"] = asdict(pruned)
        return doc


def run(config: Config, dry_run: bool = False, now: datetime | None = None) -> ForgetReport:
    """Every kind's retention at its destination, then at each [[copies]] target of that kind
    (reported as ``KIND@TARGET``): a second copy keeps what the first keeps, no longer (a
    ``delete_after`` for privacy holds there too), and its legal holds (copied along) count."""
    now = now or datetime.now(UTC)
    report = ForgetReport(dry_run)
    if config.secrets is not None:
        source = config.secrets.destination
        report.kinds["secrets"] = _secrets(config, source, dry_run, now)
        for to in _copies_of(config, "secrets", source):
            report.kinds[f"secrets@{to}"] = _secrets(config, to, dry_run, now)
    by_destination: dict[str, list[str]] = {}
    for kind in ("system", "recordings"):
        part = config.system if kind == "system" else config.recordings
        if part is not None:
            by_destination.setdefault(part.destination, []).append(kind)
    copies: dict[str, list[str]] = {}
    for name, kinds in by_destination.items():
        for kind in kinds:
            for to in _copies_of(config, kind, name):
                copies.setdefault(to, []).append(kind)
    for name, kinds in by_destination.items():
        _repository(config, name, kinds, "", dry_run, now, report)
    for name, kinds in copies.items():
        _repository(config, name, kinds, f"@{name}", dry_run, now, report)
    return report


def _copies_of(config: Config, kind: str, source: str) -> list[str]:
    return [c.to for c in config.copies if c.from_ == source and kind in c.kinds]


def _repository(
    config: Config,
    name: str,
    kinds: list[str],
    suffix: str,
    dry_run: bool,
    now: datetime,
    report: ForgetReport,
) -> None:
    try:
        repo, _ = open_product_repo(config, name, [], create=False)
    except NotFoundError:
        return
    if append_only(repo.backend):
        for kind in kinds:
            report.kinds[kind + suffix] = KindOutcome(skipped="append-only")
        return
    snapshots = repo.snapshots()
    held = held_snapshots(repo, session_snapshots(repo) if "recordings" in kinds else {})
    for kind in kinds:
        part = config.system if kind == "system" else config.recordings
        assert part is not None
        decision = decide([s for s in snapshots if s.kind == kind], part.retention, now, held)
        if not dry_run:
            forget_snapshots(repo, decision.forget)
            if kind == "recordings" and decision.forget:
                _note_retention(config, repo, {s.id for s in decision.forget})
        report.kinds[kind + suffix] = KindOutcome(
            [s.id for s in decision.forget], [s.id for s in decision.keep], why=decision.why
        )
    report.prunes[name] = prune(repo, dry_run=dry_run)


def _secrets(config: Config, destination: str, dry_run: bool, now: datetime) -> KindOutcome:
    assert config.secrets is not None
    backend = destination_backend(config, destination)
    if append_only(backend):
        return KindOutcome(skipped="append-only")
    names = secrets_backup.list_backups(backend, config.appliance.name)
    if dry_run:
        return KindOutcome(kept=len(names))
    why: dict[str, str] = {}
    deleted = secrets_backup.apply_retention(
        backend,
        config.appliance.name,
        config.secrets.keep_last,
        config.secrets.keep_within,
        now,
        protect=(names or [""])[0],
        keep_at_least=config.secrets.keep_at_least,
        delete_after=config.secrets.delete_after,
        why=why,
    )
    return KindOutcome(forgotten=deleted, why=why)


def session_snapshots(repo: Repository) -> dict[str, set[str]]:
    """Recordings session id -> the snapshots that hold its recordings (trusted batches)."""
    found: dict[str, set[str]] = {}
    for entry in entries_of(repo):
        session, snapshot = entry.get("session"), entry.get("snapshot")
        if isinstance(session, str) and isinstance(snapshot, str):
            found.setdefault(session, set()).add(snapshot)
    return found


def _note_retention(config: Config, repo: Repository, dropped: set[str]) -> None:
    """Sign which recordings the policy removed, so `recordings verify` tells them from
    tampering."""
    removed = [int(e["seq"]) for e in entries_of(repo) if e.get("snapshot") in dropped]
    retention_record(repo, removed, GENESIS, Keystore(config.appliance.state_dir).signing_key())
