"""The recordings manifest: a hash chain over every recording stored, signed by the appliance.

Pure code: bytes in, bytes out. Each backup run appends a *batch*: entries numbered from
``first_seq`` to ``last_seq``; ``head`` = SHA-256(prev_head || canonical(entry)) folded over the
entries, starting from the previous batch's head (the first batch starts from 32 zero bytes).
The batch header {repo, first_seq, last_seq, prev_head, head, time} is signed (SSHSIG, namespace
``sealbox-recordings``) by the appliance key. A removed, altered, reordered or inserted entry or
batch breaks the chain or a signature; a rolled-back destination shows an older head than the one
the appliance remembers.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sealbox.crypto import sshsig
from sealbox.crypto.trust import Trust
from sealbox.errors import CorruptFileError
from sealbox.repo import format as fmt

__all__ = ["GENESIS", "Batch", "chain", "decode_batch", "encode_batch", "entry_hash"]

GENESIS = "00" * 32
_HEX64 = re.compile(r"[0-9a-f]{64}")
NAMESPACE = "sealbox-recordings"
ENTRY_FIELDS = (
    "seq",
    "path",
    "size",
    "mtime_ns",
    "digest",
    "blobs",
    "session",
    "user",
    "target",
    "started",
    "ended",
    "snapshot",
)


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def entry_hash(prev: str, entry: dict[str, Any]) -> str:
    body = {k: entry.get(k) for k in ENTRY_FIELDS}
    return hashlib.sha256(bytes.fromhex(prev) + _canonical(body)).hexdigest()


def chain(prev: str, entries: list[dict[str, Any]]) -> str:
    head = prev
    for entry in entries:
        head = entry_hash(head, entry)
    return head


@dataclass
class Batch:
    repo: str
    first_seq: int
    last_seq: int
    prev_head: str
    head: str
    time: str
    entries: list[dict[str, Any]] = field(default_factory=list)
    signature: str = ""
    kind: str = "batch"  # or "retention": entries then name the seqs removed by policy

    def header(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "kind": self.kind,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "prev_head": self.prev_head,
            "head": self.head,
            "time": self.time,
            "entries_sha256": hashlib.sha256(_canonical(self.entries)).hexdigest(),
        }

    def sign(self, key: Ed25519PrivateKey) -> None:
        self.signature = sshsig.sign(key, _canonical(self.header()), NAMESPACE)

    def verify_signature(self, trust: Trust) -> bool:
        """True when a pinned signer signed it, False when the signer is not pinned but the
        trust accepts unverified sources; SignatureError otherwise."""
        signer = sshsig.verify(self.signature, _canonical(self.header()), NAMESPACE)
        return trust.judge(signer, f"batch {self.first_seq}-{self.last_seq}")


def encode_batch(batch: Batch, index_key: bytes) -> bytes:
    body = {**batch.header(), "entries": batch.entries, "signature": batch.signature, "version": 1}
    return fmt.seal_json(index_key, b"recordings", body)


def decode_batch(data: bytes, index_key: bytes, what: str) -> Batch:
    doc: Any = fmt.open_json(index_key, b"recordings", data, what)
    try:
        batch = Batch(
            repo=str(doc["repo"]),
            first_seq=int(doc["first_seq"]),
            last_seq=int(doc["last_seq"]),
            prev_head=str(doc["prev_head"]),
            head=str(doc["head"]),
            time=str(doc["time"]),
            entries=list(doc["entries"]),
            signature=str(doc["signature"]),
            kind=str(doc.get("kind", "batch")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptFileError(f"{what}: malformed recordings manifest") from exc
    if not (
        # a huge number (JSON has no integer bound) would only fail later, re-encoding the header
        all(-(2**63) <= seq < 2**63 for seq in (batch.first_seq, batch.last_seq))
        and all(isinstance(e, dict) and isinstance(e.get("seq"), int) for e in batch.entries)
        and all(_HEX64.fullmatch(h) for h in (batch.prev_head, batch.head))
    ):
        raise CorruptFileError(f"{what}: malformed recordings manifest (entries or heads)")
    if batch.header()["entries_sha256"] != doc.get("entries_sha256"):
        raise CorruptFileError(f"{what}: entries do not match the signed header")
    return batch
