"""``sealbox hold add|remove|list``: legal holds on system and recordings snapshots (by id) and
on recordings sessions, kept at the destination as signed records (``repo.holds``) and respected
by ``forget`` (and so by prune) whatever retention says. On a destination with S3 Object Lock,
the held snapshots' objects also carry an S3 legal hold (:func:`sync_legal_holds`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sealbox.config.models import Config
from sealbox.destinations.repos import open_product_repo
from sealbox.errors import ConfigError, NotFoundError
from sealbox.repo import holds
from sealbox.repo.repository import Repository
from sealbox.usecases.forget import session_snapshots

__all__ = ["DestinationHold", "add", "list_holds", "remove", "sync_legal_holds"]


@dataclass(frozen=True)
class DestinationHold:
    destination: str
    hold: holds.Hold
    locked: int = 0  # objects whose S3 legal hold this changed (Object Lock destinations)


def _targets(hold: holds.Hold, sessions: dict[str, set[str]]) -> set[str]:
    return {hold.snapshot} if hold.snapshot else sessions.get(hold.session, set())


def _objects(repo: Repository, ids: set[str]) -> set[str]:
    snaps = [s for s in repo.snapshots() if s.id in ids]
    return holds.objects_needed(repo, repo.load_index(), snaps) if snaps else set()


def sync_legal_holds(repo: Repository, released: holds.Hold | None = None) -> int:
    """On a destination with S3 Object Lock: an S3 legal hold on every object the active holds'
    snapshots need (so not even whoever holds the bucket's credentials can destroy them while
    held, whatever their retention date), lifted from what only ``released`` needed. The
    number of objects set; 0 where the destination has no Object Lock."""
    backend: Any = repo.backend
    if not getattr(backend, "legal_holds", False):
        return 0
    sessions = session_snapshots(repo)
    active = holds.active_holds(repo)
    keep = _objects(repo, set().union(*(_targets(h, sessions) for h in active)))
    lift = _objects(repo, _targets(released, sessions)) - keep if released else set()
    for name in sorted(keep):
        backend.set_legal_hold(name, True)
    for name in sorted(lift):
        backend.set_legal_hold(name, False)
    return len(keep) + len(lift)


def _repositories(config: Config, kinds: tuple[str, ...]) -> list[tuple[str, Repository]]:
    names = sorted(
        {
            part.destination
            for kind, part in (("system", config.system), ("recordings", config.recordings))
            if part is not None and kind in kinds
        }
    )
    found = []
    for name in names:
        try:
            found.append((name, open_product_repo(config, name, [], create=False)[0]))
        except NotFoundError:
            continue
    return found


def add(
    config: Config, reason: str, *, snapshot: str | None = None, session: str | None = None
) -> DestinationHold:
    """Hold a snapshot (an id or a unique prefix, looked up in the system and recordings
    repositories) or a recordings session."""
    if session:
        repos = _repositories(config, ("recordings",))
        if not repos:
            raise ConfigError("no [recordings] repository to hold a session in")
        name, repo = repos[0]
        hold_id = holds.add_hold(repo, reason, session=session)
    elif snapshot:
        matches = [
            (name, repo, s)
            for name, repo in _repositories(config, ("system", "recordings"))
            for s in repo.snapshots()
            if s.id.startswith(snapshot)
        ]
        if len(matches) != 1:
            raise NotFoundError(
                f"no snapshot {snapshot!r}" if not matches else f"{snapshot!r} is ambiguous"
            )
        name, repo, found = matches[0]
        hold_id = holds.add_hold(repo, reason, snapshot=found.id)
    else:
        raise ConfigError("name a snapshot or a --session")
    hold = next(h for h in holds.active_holds(repo) if h.id == hold_id)
    return DestinationHold(name, hold, sync_legal_holds(repo))


def remove(config: Config, hold_id: str, reason: str) -> DestinationHold:
    for name, repo in _repositories(config, ("system", "recordings")):
        for hold in holds.active_holds(repo):
            if hold.id.startswith(hold_id):
                holds.release_hold(repo, hold.id, reason)
                return DestinationHold(name, hold, sync_legal_holds(repo, hold))
    raise NotFoundError(f"no active hold {hold_id!r}")


def list_holds(config: Config) -> list[DestinationHold]:
    return [
        DestinationHold(name, hold)
        for name, repo in _repositories(config, ("system", "recordings"))
        for hold in holds.active_holds(repo)
    ]
