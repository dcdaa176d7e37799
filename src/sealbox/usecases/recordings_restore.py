"""``sealbox restore recordings``: recordings chosen by session or time range from the signed
manifest (batches whose signer is not pinned are left out, and named), each restored and checked
against its recorded digest; the restore is reported like every restore (``restore_run``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sealbox.alerts.report import restore_run
from sealbox.config.models import Config
from sealbox.crypto.trust import Trust
from sealbox.destinations.repos import destination_of, open_product_repo_to_read
from sealbox.errors import SignatureError
from sealbox.keys.material import Unlocked
from sealbox.recordings.restore import RecordingsRestore, restore, select
from sealbox.recordings.verify import entries_of
from sealbox.repo.blobs import BlobReader

__all__ = ["Outcome", "run"]


@dataclass
class Outcome:
    chosen: list[dict[str, Any]]  # the manifest entries restored (path, session, digest, ...)
    result: RecordingsRestore


def run(
    config: Config,
    unlocked: Unlocked,
    trust: Trust,
    target: Path,
    *,
    session: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    destination: str | None = None,
    warn: Callable[[str], None] = lambda message: None,
) -> Outcome:
    """``since`` and ``until`` are UTC (naive ones are taken as UTC)."""
    name = destination_of(config, "recordings", destination)
    what = session or f"{since or ''}..{until or ''}"
    with restore_run(config, "recordings", name, what, str(target)):
        repo = open_product_repo_to_read(config, name, unlocked.identities, trust)
        problems: list[str] = []
        entries = entries_of(repo, problems)
        for problem in problems:
            warn(problem)
        if problems and not entries:
            raise SignatureError(f"no recordings manifest batch can be trusted: {problems[0]}")
        utc = [
            d.replace(tzinfo=UTC) if d is not None and d.tzinfo is None else d
            for d in (since, until)
        ]
        chosen = select(entries, session, utc[0], utc[1])
        result = restore(BlobReader(repo, repo.load_index(), unlocked.identities), chosen, target)
        return Outcome(chosen, result)
