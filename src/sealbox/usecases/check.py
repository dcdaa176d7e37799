"""``sealbox check``: the integrity of the product's repositories, each under a shared lock
(structure without a key; with one, every blob or a sampled share of the packs), and an
``integrity.failed`` alert for each destination with errors."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager

from sealbox.alerts.report import integrity_failed, repair_outcome
from sealbox.backends.base import Backend
from sealbox.config.models import Config
from sealbox.destinations.repos import destination_backend, open_product_repo_to_read, parity_policy
from sealbox.errors import NotFoundError
from sealbox.keys.material import Unlocked
from sealbox.repo.blobs import BlobReader
from sealbox.repo.check import CheckReport, run_check
from sealbox.repo.heal import HealReport, refuse_if_damaged_root, scrub
from sealbox.repo.locks import Lock
from sealbox.repo.parity import DEFAULT_POLICY
from sealbox.repo.repository import Repository

__all__ = ["run"]


def _has_repository(backend: Backend) -> bool:
    """A config, or the parity of one (a config lost to rot is rebuilt by the repair)."""
    try:
        backend.stat("config")
    except NotFoundError:
        return any(True for _ in backend.list("parity/config"))
    return True


def _repair(config: Config, name: str) -> HealReport | None:
    """Repair the repository at destination ``name`` before it is opened (a damaged config or
    writer key would stop the opening), under a shared lock so no prune runs meanwhile."""
    backend = destination_backend(config, name, repo=True)
    if not _has_repository(backend):
        return None
    with Lock(backend, exclusive=False, purpose="repair"):
        report = scrub(backend, repair=True, policy=parity_policy(config) or DEFAULT_POLICY)
    repair_outcome(config, name, report, True)
    return report


ProgressFor = Callable[[Repository, bool], AbstractContextManager[Callable[[int], None] | None]]


def run(
    config: Config,
    unlocked: Unlocked | None,
    destination: str | None = None,
    read_data: bool = False,
    subset: float | None = None,
    progress: ProgressFor | None = None,
    repair: bool = False,
) -> dict[str, CheckReport]:
    """One report per destination checked (those of [system] and [recordings], or the one
    named); a destination holding no repository yet is left out. ``progress(repo, reading)``
    gives a callback for each blob's stored bytes (a progress bar), or None. With ``repair``,
    each repository is first repaired from its parity (no key needed; format.md §9a), with the
    repair's events, and then checked; the report's ``repair`` says what was done."""
    names = (
        [destination]
        if destination
        else sorted({p.destination for p in (config.system, config.recordings) if p is not None})
    )
    reports: dict[str, CheckReport] = {}
    for name in names:
        healed = _repair(config, name) if repair else None
        backend = destination_backend(config, name, repo=True)
        if not repair and _has_repository(backend):
            refuse_if_damaged_root(backend)
        try:
            repo = open_product_repo_to_read(
                config, name, unlocked.identities if unlocked else None
            )
        except NotFoundError:
            continue
        reader = BlobReader(repo, repo.load_index(), unlocked.identities) if unlocked else None
        reading = (read_data or subset is not None) and reader is not None
        with (
            Lock(repo.backend, exclusive=False, purpose="check"),
            progress(repo, reading) if progress else contextlib.nullcontext() as bar,
        ):
            reports[name] = run_check(
                repo,
                reader=reader,
                read_data=read_data or subset is not None,
                subset=subset,
                progress=bar,
            )
        reports[name].repair = healed
    for name, report in reports.items():
        if not report.ok:
            integrity_failed(
                config, name, f"{len(report.errors)} error(s), first: {report.errors[0]}", False
            )
    return reports
