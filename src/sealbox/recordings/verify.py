"""``sealbox recordings verify``: is every recording the appliance published still at the
destination, unaltered, in order? Names what is wrong."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import blake3

from sealbox.backends.base import read_bounded
from sealbox.crypto.trust import Trust
from sealbox.errors import SealboxError
from sealbox.recordings import manifest
from sealbox.recordings.catalog import Catalog
from sealbox.repo import format as fmt
from sealbox.repo.blobs import BlobReader
from sealbox.repo.repository import Repository

__all__ = ["VerifyReport", "load_batches", "retention_record", "verify"]

BATCH = "recordings/batch-"
RETENTION = "recordings/retention-"


@dataclass
class VerifyReport:
    batches: int = 0
    recordings: int = 0
    removed_by_policy: int = 0
    last_seq: int = 0
    head: str = manifest.GENESIS
    signer_pinned: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "batches": self.batches,
            "recordings": self.recordings,
            "removed_by_policy": self.removed_by_policy,
            "last_seq": self.last_seq,
            "head": self.head,
            "signer_pinned": self.signer_pinned,
            "errors": self.errors,
        }


def load_batches(
    repo: Repository, errors: list[str]
) -> tuple[list[manifest.Batch], list[manifest.Batch]]:
    batches: list[manifest.Batch] = []
    retentions: list[manifest.Batch] = []
    for info in repo.backend.list("recordings/"):
        try:
            data = read_bounded(repo.backend, info.name, fmt.MAX_SIZE["recordings"])
            batch = manifest.decode_batch(data, repo.keys.index_key, info.name)
        except SealboxError as exc:
            errors.append(f"{info.name}: {exc}")
            continue
        (retentions if batch.kind == "retention" else batches).append(batch)
    return sorted(batches, key=lambda b: b.first_seq), retentions


def entries_of(repo: Repository, warnings: list[str] | None = None) -> list[dict[str, Any]]:
    """Every entry of every batch whose signature the repository's trust accepts (restore uses
    this), in sequence order; batches that do not verify are left out (named in ``warnings``)."""
    problems: list[str] = []
    batches, _ = load_batches(repo, problems)
    entries: list[dict[str, Any]] = []
    for batch in batches:
        try:
            batch.verify_signature(repo.trust)
        except SealboxError as exc:
            problems.append(f"recordings {batch.first_seq}-{batch.last_seq}: {exc}")
            continue
        entries += batch.entries
    if warnings is not None:
        warnings += problems
    return entries


def verify(
    repo: Repository,
    *,
    trust: Trust,
    catalog: Catalog | None,
    reader: BlobReader | None = None,
) -> VerifyReport:
    """Check the chain against the signers ``trust`` pins (with unverified sources accepted,
    ``signer_pinned`` is False when a batch's signer was not pinned)."""
    report = VerifyReport(signer_pinned=True)
    batches, retentions = load_batches(repo, report.errors)
    removed: set[int] = set()
    for record in retentions:
        try:
            report.signer_pinned &= record.verify_signature(trust)
            removed.update(int(e["seq"]) for e in record.entries)
        except SealboxError as exc:
            report.errors.append(f"retention record {record.time}: bad signature ({exc})")
    report.removed_by_policy = len(removed)
    head, expected = manifest.GENESIS, 1
    index = repo.load_index()
    pack_ok: dict[str, bool] = {}
    for batch in batches:
        report.batches += 1
        span = f"recordings {batch.first_seq}-{batch.last_seq}"
        try:
            report.signer_pinned &= batch.verify_signature(trust)
        except SealboxError as exc:
            report.errors.append(f"{span}: signature invalid ({exc})")
        if batch.first_seq != expected:
            report.errors.append(
                f"recordings {expected}-{batch.first_seq - 1}: missing (a manifest batch was removed)"
                if batch.first_seq > expected
                else f"{span}: overlaps earlier recordings (reordered?)"
            )
        if batch.prev_head != head:
            report.errors.append(
                f"{span}: does not follow the previous batch (chain broken: removed or reordered)"
            )
        seqs = [int(e.get("seq", 0)) for e in batch.entries]
        if seqs != list(range(batch.first_seq, batch.last_seq + 1)):
            report.errors.append(f"{span}: entries out of order or missing")
        if manifest.chain(batch.prev_head, batch.entries) != batch.head:
            report.errors.append(f"{span}: entries do not hash to the signed head (altered)")
        head, expected = batch.head, batch.last_seq + 1
        for entry in batch.entries:
            report.recordings += 1
            if int(entry["seq"]) in removed:
                continue
            problem = _entry_problem(repo, index, pack_ok, entry, reader)
            if problem:
                report.errors.append(
                    f"recording {entry['path']} (session {entry.get('session') or '?'},"
                    f" #{entry['seq']}): {problem}"
                )
    report.last_seq, report.head = expected - 1, head
    if catalog is not None:
        published_seq, published_head = catalog.head()
        if published_seq > report.last_seq:
            report.errors.append(
                f"rolled back: the destination ends at recording #{report.last_seq}, this"
                f" appliance published up to #{published_seq}"
            )
        elif published_seq == report.last_seq and published_head != report.head:
            report.errors.append(
                "the destination's manifest differs from the one this appliance published"
            )
    return report


def _entry_problem(
    repo: Repository,
    index: Any,
    pack_ok: dict[str, bool],
    entry: dict[str, Any],
    reader: BlobReader | None,
) -> str | None:
    blobs = [bytes.fromhex(b) for b in entry.get("blobs", [])]
    for blob in blobs:
        if blob not in index:
            return "removed from the destination (its data is gone)"
        for pack, _ in index.locations(blob):
            if pack not in pack_ok:
                try:
                    pack_ok[pack] = fmt.content_name(repo.read_pack(pack)) == pack
                except SealboxError:
                    pack_ok[pack] = False
        if not any(pack_ok[p] for p, _ in index.locations(blob)):
            return "altered at the destination (damaged data)"
    if reader is not None:
        hasher = blake3.blake3()
        try:
            for blob in blobs:
                hasher.update(reader.read(blob))
        except SealboxError as exc:
            return f"cannot be read back ({exc})"
        if hasher.hexdigest() != entry.get("digest"):
            return "content differs from the digest recorded when it was stored"
    return None


def retention_record(repo: Repository, removed: list[int], head: str, signer: Any) -> None:
    """A signed note that these recordings were removed by the retention policy (not tampering)."""
    if not removed:
        return
    record = manifest.Batch(
        repo=repo.config.id,
        first_seq=0,
        last_seq=0,
        prev_head=head,
        head=head,
        time=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        entries=[{"seq": n} for n in sorted(removed)],
        kind="retention",
    )
    record.sign(signer)
    with contextlib.suppress(SealboxError):
        repo.backend.put(
            f"{RETENTION}{record.time.replace(':', '').replace('.', '')}",
            manifest.encode_batch(record, repo.keys.index_key),
            exclusive=True,
        )
