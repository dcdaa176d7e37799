"""Use case: what went stale (``sealbox restore report SNAPSHOT``, and the summary at the end of
``restore system``): every credential changed since the system snapshot's time, from the newest
secrets backup.

Two ways to know: with the custodians' key, the newest secrets backup is opened in memory and its
items' summaries (name, type, host, user; never a secret) are listed; without any key, its signed
change list (``NAME.changes.json``, :mod:`sealbox.breakglass.changes`: ids and change times
only) is read, checked against the appliance's pinned signers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sealbox.backends.base import read_bounded
from sealbox.breakglass import changes, package
from sealbox.breakglass.opener import (
    MAX_BACKUP,
    MAX_MANIFEST,
    MAX_SIGNATURE,
    BackupFiles,
    open_backup,
)
from sealbox.config.models import Config
from sealbox.crypto.trust import Trust
from sealbox.destinations.repos import (
    destination_backend,
    destination_of,
    open_product_repo,
    open_product_repo_to_read,
)
from sealbox.errors import ConfigError, CorruptFileError, NotFoundError
from sealbox.keys.material import Unlocked
from sealbox.repo.repository import Snapshot
from sealbox.usecases.secrets_backup import list_backups

__all__ = ["StaleItem", "StaleReport", "report", "report_for"]


@dataclass(frozen=True)
class StaleItem:
    id: str
    updated: str
    type: str | None = None  # known when the backup was opened with the key
    name: str | None = None
    host: str | None = None
    username: str | None = None


@dataclass
class StaleReport:
    snapshot: str
    snapshot_time: str
    backup: str  # the secrets backup read
    backup_time: str
    source: str  # "change list" (no key) or "secrets backup" (opened with the key)
    items: list[StaleItem] = field(default_factory=list)
    undated: list[str] = field(default_factory=list)  # ids whose source gives no change time
    total: int = 0  # items in the backup
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _snapshot(
    config: Config, ref: str, unlocked: Unlocked | None, trust: Trust, destination: str | None
) -> Snapshot:
    name = destination_of(config, "system", destination)
    if unlocked is not None:
        repo = open_product_repo_to_read(config, name, unlocked.identities, trust)
    else:  # the appliance: its own keys read the snapshot headers
        repo, _ = open_product_repo(config, name, [], create=False)
    return repo.find_snapshot(ref, kind="system" if ref == "latest" else None)


def report(
    config: Config,
    ref: str,
    unlocked: Unlocked | None,
    trust: Trust,
    *,
    destination: str | None = None,
) -> StaleReport:
    """The credentials changed since system snapshot ``ref`` (an id prefix or ``latest``)."""
    snap = _snapshot(config, ref, unlocked, trust, destination)
    return report_for(config, snap, unlocked, trust)


def report_for(
    config: Config, snap: Snapshot, unlocked: Unlocked | None, trust: Trust
) -> StaleReport:
    if config.secrets is None:
        raise ConfigError("no [secrets] section: no secrets backup says what changed since")
    backend = destination_backend(config, config.secrets.destination)
    names = list_backups(backend, config.appliance.name)
    if not names:
        raise NotFoundError("no secrets backup at the destination: nothing says what changed")
    newest = names[0]
    out = StaleReport(snap.id, snap.time, newest, "", "")
    since = snap.datetime
    if unlocked is not None:
        files = BackupFiles(
            Path(newest),
            read_bounded(backend, newest, MAX_BACKUP, newest),
            read_bounded(backend, newest + ".sig", MAX_SIGNATURE, newest).decode(errors="replace"),
            read_bounded(backend, newest + ".manifest.json", MAX_MANIFEST, newest),
        )
        opened = open_backup(files, unlocked, trust=trust, ignore_signature=False)
        out.source, out.warnings = "secrets backup", out.warnings + opened.warnings
        try:
            document = opened.document
            summaries = document.summaries
            listed = changes.ChangeList(
                newest,
                document.appliance,
                document.created,
                tuple((str(s["id"]), s.get("updated")) for s in summaries),
                True,
            )
            by_id = {str(s["id"]): s for s in summaries}
        finally:
            opened.document.close()
        out.items = [
            StaleItem(
                item_id,
                updated,
                by_id[item_id].get("type"),
                by_id[item_id].get("name"),
                by_id[item_id].get("host"),
                by_id[item_id].get("username"),
            )
            for item_id, updated in listed.changed_since(since)
        ]
    else:
        where = newest + changes.SUFFIX
        try:
            data = read_bounded(backend, where, changes.MAX_CHANGES, where)
        except NotFoundError:
            raise NotFoundError(
                f"{newest} has no change list: give the custodians' key (--share or --identity)"
            ) from None
        listed = changes.parse(data, trust, where)
        if listed.file != newest:  # a genuine older list put beside another name
            raise CorruptFileError(f"{where} belongs to {listed.file[:80]!r}, not to {newest}")
        out.source = "change list"
        if not listed.pinned:
            out.warnings.append("the change list's signer is not pinned: UNVERIFIED")
        out.items = [StaleItem(i, u) for i, u in listed.changed_since(since)]
    if listed.appliance != config.appliance.name:
        raise CorruptFileError(
            f"{newest} was made by {listed.appliance[:60]!r}, not this appliance"
        )
    # The signed time, not the name's: a name says nothing the storage side could not change.
    out.backup_time = listed.created
    made = changes.parse_time(listed.created)
    if made is None:
        raise CorruptFileError(f"{newest}: its time {listed.created[:40]!r} is not a time")
    stamp = package.parse_backup_name(newest)
    if stamp is None or stamp[1] != made.strftime("%Y%m%dT%H%M%SZ"):
        # A backup (or its list) stored under another name: an older one passed for the newest.
        raise CorruptFileError(
            f"{newest} was made at {listed.created}, which its name does not say"
        )
    if made > datetime.now(UTC) + timedelta(hours=1):
        out.warnings.append(f"{newest} says it was made {listed.created}, in the future")
    if made < since:
        out.warnings.append(
            f"the newest secrets backup ({listed.created}) is older than the snapshot: changes"
            " made after it are not known"
        )
    out.undated, out.total = listed.undated, len(listed.items)
    return out
