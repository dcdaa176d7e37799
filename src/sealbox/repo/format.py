"""Pure encodings of the repository objects (docs/design/format.md, part II). Bytes in, bytes out.

Three kinds of key protect three kinds of object:

- **data keys** (AES-256-GCM, one per backup run, sealed with age to the recipients only): blobs
  (file chunks and trees). The appliance forgets a data key when its run ends, so it cannot read
  its own backups back.
- the **index key** (AES-256-GCM, held by the writer): pack headers, index files, snapshot headers
  and reference lists, so the appliance can deduplicate, list, prune and check without the
  private key, while the storage side learns nothing from them.
- the **id key** (keyed BLAKE3, held by the writer): blob ids, so ids reveal nothing about content.

Every object stored under a content name is named by the unkeyed BLAKE3 of its bytes, so anyone
can check any object for damage without a key.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import blake3
import orjson
import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sealbox.errors import CorruptFileError

__all__ = [
    "BLOB_DATA",
    "BLOB_TREE",
    "ID_LEN",
    "IndexEntry",
    "PackEntry",
    "blob_aad",
    "content_name",
    "decode_index",
    "decode_pack_header",
    "encode_index",
    "encode_pack_header",
    "open_sealed",
    "seal",
]

ID_LEN = 32
KEY_ID_LEN = 32
NONCE_LEN = 12
TAG_LEN = 16
BLOB_DATA = 0
BLOB_TREE = 1
_MAGIC_OBJECT = b"SBXo"  # AAD prefix of index-key objects
_MAGIC_BLOB = b"SBXb"  # AAD prefix of blobs
_MAGIC_PACK = b"SBXp"  # pack header magic (inside its encryption)
FORMAT_VERSION = 2

# The largest object of each kind a reader accepts, checked before anything is read or allocated:
# a destination (or whoever controls it) may plant an object of any size under any name.
MAX_SIZE = {
    "config": 64 << 10,
    "keys": 64 << 10,
    "datakeys": 16 << 10,
    "snapshots": 16 << 20,
    "refs": 1 << 30,  # 32 bytes a blob: about 30 million blobs
    "index": 1 << 30,
    "locks": 64 << 10,
    "recordings": 512 << 20,  # a batch: about a million recordings
    "pack": 256 << 20,  # pack_size (8 MiB) plus one chunk (4 MiB) in practice
}
MAX_INDEX_BODY = 2 << 30  # decompressed index: ~26 million entries
MAX_PACK_HEADER = 2 << 20  # 16,384 entries of 81 bytes, sealed
INDEX_PART = 65536  # entries a writer puts in one index file (about 5 MiB decoded)


def content_name(data: bytes | bytearray | memoryview) -> str:
    """The name of a content-addressed object: hex BLAKE3 of its bytes (no key)."""
    return blake3.blake3(
        data, max_threads=blake3.blake3.AUTO if len(data) > 1 << 20 else 1
    ).hexdigest()


def blob_aad(blob_type: int, blob_id: bytes) -> bytes:
    """Associated data of a blob: binds its ciphertext to its id and type (no swapping)."""
    return _MAGIC_BLOB + bytes((FORMAT_VERSION, blob_type)) + blob_id


def seal(key: bytes, kind: bytes, plaintext: bytes) -> bytes:
    """An index-key object: ``nonce || AES-256-GCM(plaintext, aad = "SBXo" || version || kind)``.

    ``kind`` (e.g. ``b"index"``) is authenticated, so an object cannot pass for another kind.
    """
    nonce = os.urandom(NONCE_LEN)
    return nonce + AESGCM(key).encrypt(
        nonce, plaintext, _MAGIC_OBJECT + bytes((FORMAT_VERSION,)) + kind
    )


def open_sealed(key: bytes, kind: bytes, data: bytes, what: str) -> bytes:
    if len(data) < NONCE_LEN + TAG_LEN:
        raise CorruptFileError(f"{what}: too short to be a sealed object")
    try:
        return AESGCM(key).decrypt(
            data[:NONCE_LEN], data[NONCE_LEN:], _MAGIC_OBJECT + bytes((FORMAT_VERSION,)) + kind
        )
    except InvalidTag:
        raise CorruptFileError(
            f"{what}: authentication failed (damaged, or not from this repository)"
        ) from None


# --- packs -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PackEntry:
    """One blob inside a pack: where its ciphertext is and which data key sealed it."""

    blob_type: int
    blob_id: bytes
    offset: int
    length: int  # stored bytes: nonce + ciphertext + tag
    raw_length: int  # plaintext length; stored payload shorter than this means zstd-compressed
    key_id: bytes


_ENTRY = struct.Struct(">B32sQII32s")
ENTRY_SIZE = _ENTRY.size


def encode_pack_header(entries: list[PackEntry], index_key: bytes) -> bytes:
    """The sealed header appended to a pack, followed by its length as 4 bytes big-endian."""
    body = bytearray(_MAGIC_PACK + struct.pack(">I", len(entries)))
    for e in entries:
        body += _ENTRY.pack(e.blob_type, e.blob_id, e.offset, e.length, e.raw_length, e.key_id)
    sealed = seal(index_key, b"pack", bytes(body))
    return sealed + struct.pack(">I", len(sealed))


def decode_pack_header(tail: bytes, index_key: bytes, what: str) -> list[PackEntry]:
    """Entries from a pack's tail (the sealed header and its 4-byte length)."""
    if len(tail) < 4:
        raise CorruptFileError(f"{what}: truncated pack")
    (length,) = struct.unpack(">I", tail[-4:])
    if length + 4 > len(tail) or length > MAX_PACK_HEADER:
        raise CorruptFileError(f"{what}: pack header length is out of range")
    body = open_sealed(index_key, b"pack", tail[-4 - length : -4], what)
    if body[:4] != _MAGIC_PACK or len(body) < 8:
        raise CorruptFileError(f"{what}: not a pack header")
    (count,) = struct.unpack(">I", body[4:8])
    if len(body) != 8 + count * _ENTRY.size:
        raise CorruptFileError(f"{what}: pack header has a wrong size")
    return [PackEntry(*_ENTRY.unpack_from(body, 8 + i * _ENTRY.size)) for i in range(count)]


def pack_header_size(tail_length_field: bytes, what: str) -> int:
    """Bytes to read from the end of a pack for its header (including the 4-byte length),
    bounded before anything is allocated."""
    if len(tail_length_field) != 4:
        raise CorruptFileError(f"{what}: truncated pack")
    length = int(struct.unpack(">I", tail_length_field)[0])
    if length > MAX_PACK_HEADER:
        raise CorruptFileError(f"{what}: pack header length {length:,} is out of range")
    return length + 4


# --- index files --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IndexEntry:
    pack: str
    entry: PackEntry


def encode_index(packs: Mapping[str, Sequence[PackEntry]], index_key: bytes) -> bytes:
    """An index file: for each pack, its name and entries; zstd-compressed then sealed."""
    body = bytearray(struct.pack(">I", len(packs)))
    for name, entries in packs.items():
        body += bytes.fromhex(name) + struct.pack(">I", len(entries))
        for e in entries:
            body += _ENTRY.pack(e.blob_type, e.blob_id, e.offset, e.length, e.raw_length, e.key_id)
    return seal(index_key, b"index", zstandard.ZstdCompressor(level=3).compress(bytes(body)))


def index_records(data: bytes, index_key: bytes, what: str) -> list[tuple[str, memoryview]]:
    """An index file's packs, each with its entries still encoded (``ENTRY_SIZE`` bytes each, as
    in a pack header): the whole file is checked first, so a bad one yields nothing."""
    raw = open_sealed(index_key, b"index", data, what)
    try:
        # A frame that states its size is given that much memory, whatever max_output_size says.
        if zstandard.frame_content_size(raw) > MAX_INDEX_BODY:
            raise CorruptFileError(f"{what}: index claims more than {MAX_INDEX_BODY:,} bytes")
        body = zstandard.ZstdDecompressor().decompress(raw, max_output_size=MAX_INDEX_BODY)
    except zstandard.ZstdError as exc:
        raise CorruptFileError(f"{what}: index does not decompress") from exc
    view = memoryview(body)
    try:
        (count,) = struct.unpack_from(">I", body, 0)
        pos = 4
        packs: list[tuple[str, memoryview]] = []
        if count > len(body) // 36:  # each pack takes at least 36 bytes: no huge loop on junk
            raise CorruptFileError(f"{what}: index is truncated")
        for _ in range(count):
            name = body[pos : pos + 32].hex()
            (n,) = struct.unpack_from(">I", body, pos + 32)
            pos += 36
            end = pos + n * _ENTRY.size
            if end > len(body):
                raise CorruptFileError(f"{what}: index is truncated")
            packs.append((name, view[pos:end]))
            pos = end
    except struct.error as exc:
        raise CorruptFileError(f"{what}: index is truncated") from exc
    if pos != len(body):
        raise CorruptFileError(f"{what}: index has trailing bytes")
    return packs


def entries_of(records: memoryview | bytes) -> list[PackEntry]:
    """Encoded entries (from :func:`index_records`) as PackEntry objects."""
    return [PackEntry(*fields) for fields in _ENTRY.iter_unpack(records)]


def decode_index(data: bytes, index_key: bytes, what: str) -> dict[str, list[PackEntry]]:
    """An index file's packs and their entries (a pack named twice: its last list)."""
    return {name: entries_of(records) for name, records in index_records(data, index_key, what)}


# --- JSON objects sealed with the index key (snapshots) and reference lists ----------------------


def seal_json(index_key: bytes, kind: bytes, value: object) -> bytes:
    return seal(index_key, kind, orjson.dumps(value))


def open_json(index_key: bytes, kind: bytes, data: bytes, what: str) -> object:
    try:
        return orjson.loads(open_sealed(index_key, kind, data, what))
    except orjson.JSONDecodeError as exc:
        raise CorruptFileError(f"{what}: not valid JSON inside") from exc


class SortedIds(Protocol):
    def sorted_bytes(self) -> bytes: ...


def encode_refs(ids: set[bytes] | list[bytes] | SortedIds, index_key: bytes) -> bytes:
    """A snapshot's reference list: every blob id it needs, sorted, sealed."""
    body = ids.sorted_bytes() if hasattr(ids, "sorted_bytes") else b"".join(sorted(ids))
    return seal(index_key, b"refs", body)


def decode_refs(data: bytes, index_key: bytes, what: str) -> list[bytes]:
    body = open_sealed(index_key, b"refs", data, what)
    if len(body) % ID_LEN:
        raise CorruptFileError(f"{what}: reference list has a wrong size")
    return [body[i : i + ID_LEN] for i in range(0, len(body), ID_LEN)]
