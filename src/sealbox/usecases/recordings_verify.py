"""``sealbox recordings verify``: the recordings chain at the destination checked against the
signers a reader pins (with a key, every recording decrypted and compared with its digest); an
``integrity.failed`` alert (tampering) when anything is wrong."""

from __future__ import annotations

from sealbox.alerts.report import integrity_failed
from sealbox.config.models import Config
from sealbox.crypto.trust import Trust
from sealbox.destinations.repos import destination_of, open_product_repo_to_read
from sealbox.keys.material import Unlocked
from sealbox.recordings.verify import VerifyReport, verify
from sealbox.repo.blobs import BlobReader
from sealbox.usecases.recordings_backup import catalog_for

__all__ = ["run"]


def run(
    config: Config,
    unlocked: Unlocked | None,
    trust: Trust,
    destination: str | None = None,
    read_data: bool = False,
) -> VerifyReport:
    name = destination_of(config, "recordings", destination)
    repo = open_product_repo_to_read(config, name, unlocked.identities if unlocked else None, trust)
    reader = (
        BlobReader(repo, repo.load_index(), unlocked.identities) if unlocked and read_data else None
    )
    catalog = catalog_for(config, repo)
    try:
        report = verify(repo, trust=trust, catalog=catalog, reader=reader)
    finally:
        catalog.close()
    if not report.ok:
        summary = f"{len(report.errors)} problem(s), first: {report.errors[0]}"
        integrity_failed(config, name, summary, tampering=True)
    return report
