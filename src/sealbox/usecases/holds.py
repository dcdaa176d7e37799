"""``sealbox hold add|remove|list``: legal holds on system and recordings snapshots (by id) and
on recordings sessions, kept at the destination as signed records (``repo.holds``) and respected
by ``forget`` (and so by prune) whatever retention says."""

from __future__ import annotations

from dataclasses import dataclass

from sealbox.config.models import Config
from sealbox.destinations.repos import open_product_repo
from sealbox.errors import ConfigError, NotFoundError
from sealbox.repo import holds
from sealbox.repo.repository import Repository

__all__ = ["DestinationHold", "add", "list_holds", "remove"]


@dataclass(frozen=True)
class DestinationHold:
    destination: str
    hold: holds.Hold


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
    return DestinationHold(name, hold)


def remove(config: Config, hold_id: str, reason: str) -> DestinationHold:
    for name, repo in _repositories(config, ("system", "recordings")):
        for hold in holds.active_holds(repo):
            if hold.id.startswith(hold_id):
                holds.release_hold(repo, hold.id, reason)
                return DestinationHold(name, hold)
    raise NotFoundError(f"no active hold {hold_id!r}")


def list_holds(config: Config) -> list[DestinationHold]:
    return [
        DestinationHold(name, hold)
        for name, repo in _repositories(config, ("system", "recordings"))
        for hold in holds.active_holds(repo)
    ]
