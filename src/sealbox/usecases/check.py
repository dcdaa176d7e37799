"""``sealbox check``: the integrity of the product's repositories, each under a shared lock
(structure without a key; with one, every blob or a sampled share of the packs), and an
``integrity.failed`` alert for each destination with errors."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager

from sealbox.alerts.report import integrity_failed
from sealbox.config.models import Config
from sealbox.destinations.repos import open_product_repo_to_read
from sealbox.errors import NotFoundError
from sealbox.keys.material import Unlocked
from sealbox.repo.blobs import BlobReader
from sealbox.repo.check import CheckReport, run_check
from sealbox.repo.locks import Lock
from sealbox.repo.repository import Repository

__all__ = ["run"]


ProgressFor = Callable[[Repository, bool], AbstractContextManager[Callable[[int], None] | None]]


def run(
    config: Config,
    unlocked: Unlocked | None,
    destination: str | None = None,
    read_data: bool = False,
    subset: float | None = None,
    progress: ProgressFor | None = None,
) -> dict[str, CheckReport]:
    """One report per destination checked (those of [system] and [recordings], or the one
    named); a destination holding no repository yet is left out. ``progress(repo, reading)``
    gives a callback for each blob's stored bytes (a progress bar), or None."""
    names = (
        [destination]
        if destination
        else sorted({p.destination for p in (config.system, config.recordings) if p is not None})
    )
    reports: dict[str, CheckReport] = {}
    for name in names:
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
    for name, report in reports.items():
        if not report.ok:
            integrity_failed(
                config, name, f"{len(report.errors)} error(s), first: {report.errors[0]}", False
            )
    return reports
