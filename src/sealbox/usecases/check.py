"""``sealbox check``: the integrity of the product's repositories, each under a shared lock
(structure without a key; with one, every blob or a sampled share of the packs), and an
``integrity.failed`` alert for each destination with errors."""

from __future__ import annotations

from sealbox.alerts.report import integrity_failed
from sealbox.config.models import Config
from sealbox.destinations.repos import open_product_repo_to_read
from sealbox.errors import NotFoundError
from sealbox.keys.material import Unlocked
from sealbox.repo.blobs import BlobReader
from sealbox.repo.check import CheckReport, run_check
from sealbox.repo.locks import Lock

__all__ = ["run"]


def run(
    config: Config,
    unlocked: Unlocked | None,
    destination: str | None = None,
    read_data: bool = False,
    subset: float | None = None,
) -> dict[str, CheckReport]:
    """One report per destination checked (those of [system] and [recordings], or the one
    named); a destination holding no repository yet is left out."""
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
        with Lock(repo.backend, exclusive=False, purpose="check"):
            reports[name] = run_check(
                repo, reader=reader, read_data=read_data or subset is not None, subset=subset
            )
    for name, report in reports.items():
        if not report.ok:
            integrity_failed(
                config, name, f"{len(report.errors)} error(s), first: {report.errors[0]}", False
            )
    return reports
