"""The dashboard's Snapshots page: each kind's snapshots (or secrets backups) with what a
reviewer asks of them: time, size, files, whether their signature verified, which copies hold
them, whether a restore drill proved them, and whether a legal hold keeps them."""

from __future__ import annotations

from dataclasses import dataclass, field

from sealbox.config.models import Config
from sealbox.destinations.repos import destination_backend, open_product_repo
from sealbox.errors import NotFoundError, SealboxError
from sealbox.repo.drills import receipts
from sealbox.repo.holds import held_snapshots
from sealbox.usecases.copy import existing_names
from sealbox.usecases.drill import pinned_drill_signers
from sealbox.usecases.forget import session_snapshots
from sealbox.usecases.secrets_backup import list_backups

__all__ = ["SnapshotRow", "rows"]


@dataclass
class SnapshotRow:
    id: str  # snapshot id, or the secrets backup's file name
    time: str
    size: int | None
    files: int | None
    verified: bool
    copied: list[str] = field(default_factory=list)  # destinations of the copies holding it
    held: str | None = None  # why a legal hold keeps it
    drilled: str | None = None  # the newest drill of it: "passed 2026-12-01T..." / "failed ..."


def rows(config: Config, kind: str) -> tuple[list[SnapshotRow], str | None]:
    """(rows newest first, an error that stopped the listing or None)."""
    part = {"secrets": config.secrets, "system": config.system, "recordings": config.recordings}
    section = part.get(kind)
    if section is None:
        return [], None
    copies = [c.to for c in config.copies if c.from_ == section.destination and kind in c.kinds]
    try:
        if kind == "secrets":
            backend = destination_backend(config, section.destination)
            found = []
            at_copies = {to: set(existing_names(config, to, "secrets-")) for to in copies}
            for name in list_backups(backend, config.appliance.name):
                stamp = name.removeprefix(f"secrets-{config.appliance.name}-")[:16]
                found.append(
                    SnapshotRow(
                        name,
                        stamp,
                        backend.stat(name).size,
                        None,
                        True,  # verified when opened; the list shows what is there
                        [to for to in copies if name in at_copies[to]],
                    )
                )
            return found, None
        repo, _ = open_product_repo(config, section.destination, [], create=False)
        snaps = [s for s in repo.snapshots() if s.kind == kind]
        held = held_snapshots(repo, session_snapshots(repo) if kind == "recordings" else {})
        drilled = {
            r.snapshot: f"{r.result} {r.time[:16]}"
            for r in receipts(repo, kind, pinned_drill_signers(config))
        }  # oldest first: the newest drill of a snapshot wins
        at_copies = {
            to: {
                n.removeprefix("snapshots/")
                for n in existing_names(config, to, "snapshots/", repo=True)
            }
            for to in copies
        }
        return [
            SnapshotRow(
                s.id,
                s.time,
                s.size,
                s.files,
                s.verified,
                [to for to in copies if s.id in at_copies[to]],
                held.get(s.id),
                drilled.get(s.id),
            )
            for s in reversed(snaps)
        ], None
    except NotFoundError:
        return [], None
    except SealboxError as exc:
        return [], str(exc)
