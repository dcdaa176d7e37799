"""Parity objects: erasure coding (zfec) that heals a damaged repository object, without any key.

Pure: bytes in, bytes out (docs/design/format.md §9a). An object of ``size`` bytes is cut into
``n`` shares of ``share_size`` bytes (4 KiB, or the whole object when smaller; the last share is
zero-padded), at 4 KiB-aligned offsets. The shares are dealt into ``G`` stripe groups
round-robin (share ``i`` is in group ``i mod G``), ``G = max(ceil(n / k), min(n, 2))``, and zfec
(Rizzo's Reed-Solomon code over GF(2^8)) computes ``m`` parity shares per group: any ``m`` lost
shares of a group are rebuilt from the others. Consecutive shares lie in different groups, so a
damaged run of up to ``G * m`` shares costs each group at most ``m``; one damaged 4 KiB region
touches at most two consecutive shares. A digest of every share (data and parity) lets a reader
tell the damaged shares apart without a key; the rebuilt object must match the object's own
digest (its content name) before anyone writes it back.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import blake3
import zfec

from sealbox.errors import CorruptFileError

__all__ = [
    "DEFAULT_POLICY",
    "SHARE_SIZE",
    "Parity",
    "ParityPolicy",
    "decode_parity",
    "digest",
    "encode_parity",
    "parse_policy",
    "rebuild",
]

SHARE_SIZE = 4096
SHARE_DIGEST = 16  # truncated BLAKE3: localises rot; the whole object is checked by its full digest
VERSION = 1
_MAGIC = b"SBXr"
_HEAD = struct.Struct(">4sBIHHQ32sH")  # magic version share_size k m size digest name_len
MAX_K = 128  # k + m stays within zfec's 256 shares per group
MAX_M = 8


@dataclass(frozen=True)
class ParityPolicy:
    """``k`` data shares per stripe group and ``m`` parity shares for each: an overhead of about
    ``m / k``; ``copies`` parity objects per object (critical small objects keep two)."""

    k: int = 16
    m: int = 1
    copies: int = 1

    def __post_init__(self) -> None:
        ok = 1 <= self.k <= MAX_K and 1 <= self.m <= min(MAX_M, max(self.k, 2))
        if not (ok and 1 <= self.copies <= 4):
            raise ValueError(f"parity k={self.k} m={self.m} copies={self.copies} out of range")

    @property
    def label(self) -> str:
        return f"{100 * self.m / self.k:.2f}%".replace(".00%", "%")


# 1 parity share per 16 (6.25% + 0.4% of share digests): measured in format.md §9a.
DEFAULT_POLICY = ParityPolicy()


def parse_policy(text: str) -> ParityPolicy | None:
    """``"6.25%"`` (one parity share per ``round(100 / 6.25)`` = 16 data shares), ``"K+M"``
    (``"32+2"``) or ``"off"`` (None: no parity). ValueError with a message for a person."""
    value = text.strip()
    if value.lower() == "off":
        return None
    try:
        if "+" in value:
            k, m = (int(part) for part in value.split("+", 1))
            return ParityPolicy(k=k, m=m)
        percent = float(value.removesuffix("%"))
    except ValueError:
        raise ValueError(
            f"parity {text!r}: use a percentage like 6.25%, K+M like 32+2, or off"
        ) from None
    if not 1 <= percent <= 50:
        raise ValueError(f"parity {text!r}: between 1% and 50%")
    return ParityPolicy(k=max(2, round(100 / percent)), m=1)


def digest(data: bytes | bytearray | memoryview) -> bytes:
    return blake3.blake3(data).digest()


def _share_digest(share: bytes | memoryview) -> bytes:
    return blake3.blake3(share).digest(length=SHARE_DIGEST)


def _layout(size: int, k: int) -> tuple[int, int, int]:
    """(share_size, n, G) for an object of ``size`` bytes."""
    share_size = SHARE_SIZE if size > SHARE_SIZE else max(size, 1)
    n = -(-size // share_size)
    groups = max(-(-n // k), min(n, 2))
    return share_size, n, groups


def _shares(data: bytes | memoryview, share_size: int, n: int) -> list[bytes | memoryview]:
    """The ``n`` shares of ``data``, each ``share_size`` bytes (zero-padded; absent bytes too):
    views into ``data`` where it holds a whole share, copies only where padding is needed."""
    view = memoryview(data)
    out: list[bytes | memoryview] = []
    for i in range(n):
        share = view[i * share_size : (i + 1) * share_size]
        out.append(share if len(share) == share_size else bytes(share).ljust(share_size, b"\0"))
    return out


@dataclass(frozen=True)
class Parity:
    """A decoded parity object: what it protects and the shares that can rebuild it."""

    name: str  # the protected object's name
    size: int
    object_digest: bytes  # BLAKE3-256 of the whole object
    share_size: int
    k: int
    m: int
    data_digests: list[bytes]
    parity_digests: list[bytes]
    parity_shares: list[memoryview]  # (group, j) at index group * m + j

    @property
    def groups(self) -> int:
        return _layout(self.size, self.k)[2]

    def parity_share_ok(self, index: int) -> bool:
        share = self.parity_shares[index]
        return len(share) == self.share_size and _share_digest(share) == self.parity_digests[index]

    def damaged_parity_shares(self) -> list[int]:
        return [i for i in range(len(self.parity_shares)) if not self.parity_share_ok(i)]

    def damaged_shares(self, data: bytes | memoryview | None) -> list[int]:
        """Indexes of the object's shares that do not match their digests (missing ones too)."""
        return [i for i, ok in enumerate(_check_shares(self, data)[1]) if not ok]


def _check_shares(
    parity: Parity, data: bytes | memoryview | None
) -> tuple[list[bytes | memoryview], list[bool]]:
    """The object's shares as found (padded) and whether each matches its digest. A share is
    present when all its bytes are there (the last one: when the object has its full size)."""
    view = memoryview(data if data is not None else b"")[: parity.size]
    n = len(parity.data_digests)
    shares = _shares(view, parity.share_size, n)
    present = n if len(view) == parity.size else len(view) // parity.share_size
    good = [i < present and _share_digest(shares[i]) == parity.data_digests[i] for i in range(n)]
    return shares, good


def encode_parity(
    name: str,
    data: bytes | memoryview,
    policy: ParityPolicy = DEFAULT_POLICY,
    object_digest: bytes | None = None,
) -> bytes:
    """The parity object of ``data`` (the object stored as ``name``). ``object_digest``: the
    BLAKE3-256 of ``data`` when the caller has it (a content name), else it is computed."""
    size = len(data)
    share_size, n, groups = _layout(size, policy.k)
    shares = _shares(data, share_size, n)
    encoded = name.encode()
    whole = object_digest if object_digest is not None else digest(data)
    head = _HEAD.pack(_MAGIC, VERSION, share_size, policy.k, policy.m, size, whole, len(encoded))
    parity: list[bytes] = []
    encoders: dict[int, Any] = {}  # one per group size (all groups but the last few are full)
    for group in range(groups if n else 0):
        members = shares[group::groups]
        count = len(members)
        if count not in encoders:
            encoders[count] = zfec.Encoder(count, count + policy.m)
        parity += encoders[count].encode(members, list(range(count, count + policy.m)))
    table = b"".join(_share_digest(s) for s in shares) + b"".join(_share_digest(p) for p in parity)
    body = head + encoded + table
    return body + digest(body) + b"".join(parity)


def decode_parity(blob: bytes | memoryview, where: str) -> Parity:
    """A parity object, its header and digest table checked (its parity shares are checked one by
    one when used). CorruptFileError when the header or the table is damaged."""
    view = memoryview(blob)
    if len(view) < _HEAD.size:
        raise CorruptFileError(f"{where}: truncated parity object")
    magic, version, share_size, k, m, size, object_digest, name_len = _HEAD.unpack_from(view)
    if magic != _MAGIC:
        raise CorruptFileError(f"{where}: not a parity object (damaged header)")
    if version != VERSION:
        raise CorruptFileError(
            f"{where}: parity version {version} is not supported (this Sealbox reads {VERSION})"
        )
    if not (1 <= k <= MAX_K and 1 <= m <= MAX_M and 1 <= share_size <= SHARE_SIZE):
        raise CorruptFileError(f"{where}: parity header out of range (damaged)")
    expected_share, n, groups = _layout(size, k)
    if share_size != expected_share:
        raise CorruptFileError(f"{where}: parity header out of range (damaged)")
    count = groups * m if n else 0
    table_at = _HEAD.size + name_len
    body_end = table_at + (n + count) * SHARE_DIGEST
    if len(view) < body_end + 32 + count * share_size:
        raise CorruptFileError(f"{where}: truncated parity object")
    if digest(view[:body_end]) != bytes(view[body_end : body_end + 32]):
        raise CorruptFileError(f"{where}: parity header damaged (its digest does not match)")
    try:
        name = bytes(view[_HEAD.size : table_at]).decode()
    except UnicodeDecodeError as exc:
        raise CorruptFileError(f"{where}: parity header names no object") from exc
    digests = [
        bytes(view[table_at + i * SHARE_DIGEST : table_at + (i + 1) * SHARE_DIGEST])
        for i in range(n + count)
    ]
    start = body_end + 32
    shares = [view[start + i * share_size : start + (i + 1) * share_size] for i in range(count)]
    return Parity(name, size, object_digest, share_size, k, m, digests[:n], digests[n:], shares)


def rebuild(parity: Parity, data: bytes | memoryview | None) -> bytes:
    """The object rebuilt from what is left of it (``data``: its damaged, truncated or missing
    bytes) and its parity, checked against the object's digest. CorruptFileError naming why when
    the damage is more than the parity covers (or the parity is damaged where it is needed)."""
    n, groups = len(parity.data_digests), parity.groups
    shares, good = _check_shares(parity, data)
    for group in range(groups if n else 0):
        members = list(range(group, n, groups))
        if all(good[i] for i in members):
            continue
        count = len(members)
        blocks = [shares[i] for i in members if good[i]]
        numbers = [pos for pos, i in enumerate(members) if good[i]]
        for j in range(parity.m):
            index = group * parity.m + j
            if len(blocks) < count and parity.parity_share_ok(index):
                blocks.append(bytes(parity.parity_shares[index]))
                numbers.append(count + j)
        if len(blocks) < count:
            lost = count - sum(good[i] for i in members)
            raise CorruptFileError(
                f"{parity.name}: {lost} damaged share(s) in one stripe group, more than its"
                f" {parity.m} intact parity share(s) can rebuild"
            )
        decoded = zfec.Decoder(count, count + parity.m).decode(blocks, numbers)
        for pos, i in enumerate(members):
            shares[i] = bytes(decoded[pos])
    repaired = b"".join(shares)[: parity.size]
    if digest(repaired) != parity.object_digest:
        raise CorruptFileError(f"{parity.name}: the rebuilt object does not match its digest")
    return repaired
