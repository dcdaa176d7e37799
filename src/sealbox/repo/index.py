"""The in-memory index and id sets, packed: a few dozen bytes a blob instead of Python objects.

A backup of a million small files meets a million blob ids several times over (the index it
deduplicates against, the ids its snapshot references). As ``bytes`` keys in dicts and sets each
costs 100-450 bytes; here ids live in 16,384 buckets (by their first 14 bits) of concatenated
32-byte ids, searched with ``bytearray.find`` (C speed; ids are keyed BLAKE3, so buckets stay
even), and what the index knows of each copy sits in a parallel fixed-size record.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence

from sealbox.errors import CorruptFileError
from sealbox.repo import format as fmt

__all__ = ["IdSet", "Index"]

# 16,384 buckets: at a million blobs a bucket holds about 60 ids (a 2 KiB search), while a
# small repository does not pay for many empty ones (each costs ~60 bytes, three lists of them).
_BUCKETS = 1 << 14
_ID = fmt.ID_LEN
# Per copy: pack number, blob type, offset, stored length, plaintext length, data key number (a
# data key per run: a recordings repository makes tens of thousands a year).
_LOC = struct.Struct("<IBQIII")
_RECORD = struct.Struct(">B32sQII32s")  # an entry as index files and pack headers encode it


def _bucket(blob_id: bytes) -> int:
    return (blob_id[0] << 6) | (blob_id[1] >> 2)


def _find(ids: bytearray, blob_id: bytes, start: int = 0) -> int:
    """Slot of ``blob_id`` in a bucket at or after slot ``start``, or -1 (only aligned hits count:
    an id could in theory appear across two neighbours)."""
    pos = ids.find(blob_id, start * _ID)
    while pos != -1 and pos % _ID:
        pos = ids.find(blob_id, pos + 1)
    return -1 if pos == -1 else pos // _ID


class IdSet:
    """A set of 32-byte ids in about 36 bytes each; iterates in sorted order."""

    def __init__(self, ids: Iterable[bytes] = ()) -> None:
        self._buckets = [bytearray() for _ in range(_BUCKETS)]
        self._count = 0
        for blob_id in ids:
            self.add(blob_id)

    def add(self, blob_id: bytes) -> None:
        if len(blob_id) != _ID:
            raise ValueError("an id is 32 bytes")
        ids = self._buckets[_bucket(blob_id)]
        if _find(ids, blob_id) == -1:
            ids += blob_id
            self._count += 1

    def update(self, ids: Iterable[bytes]) -> None:
        for blob_id in ids:
            self.add(blob_id)

    def discard(self, blob_id: bytes) -> None:
        ids = self._buckets[_bucket(blob_id)]
        slot = _find(ids, blob_id)
        if slot != -1:
            del ids[slot * _ID : (slot + 1) * _ID]
            self._count -= 1

    def __contains__(self, blob_id: object) -> bool:
        if not isinstance(blob_id, bytes) or len(blob_id) != _ID:
            return False
        return _find(self._buckets[_bucket(blob_id)], blob_id) != -1

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[bytes]:
        """Every id, in sorted order (bucket by bucket, each bucket sorted)."""
        for ids in self._buckets:
            if ids:
                yield from sorted(bytes(ids[i : i + _ID]) for i in range(0, len(ids), _ID))

    def sorted_bytes(self) -> bytes:
        """The ids sorted and concatenated (a reference list's body), built bucket by bucket."""
        out = bytearray()
        for ids in self._buckets:
            if ids:
                out += b"".join(sorted(bytes(ids[i : i + _ID]) for i in range(0, len(ids), _ID)))
        return bytes(out)


class _Packs(Mapping[str, list[fmt.PackEntry]]):
    """``index.packs``: pack name -> its entries, rebuilt from the packed records on access."""

    def __init__(self, index: Index, names: Sequence[str] | None = None) -> None:
        self._index = index
        self._names = index._pack_names if names is None else names
        self._only = None if names is None else set(names)

    def __getitem__(self, pack: str) -> list[fmt.PackEntry]:
        if self._only is not None and pack not in self._only:
            raise KeyError(pack)
        return self._index.entries(pack)

    def __contains__(self, pack: object) -> bool:
        if self._only is not None:
            return pack in self._only
        return pack in self._index._pack_no

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class Index:
    """blob id -> (pack name, entry), built from index files (and, after a crash, pack headers).

    Index files are not trusted to agree: when two name the same pack with different entries,
    the entries are merged and every claimed location is kept (a wrong one fails authentication
    when read and the reader moves on), and the pack is listed in ``conflicts`` for ``check``.
    Prune never decides from index files alone (it reads the pack headers).

    A blob stored more than once (another run, another data key) has several copies, kept in the
    order they were indexed: :meth:`lookup` gives the first, :meth:`locations` all of them.
    """

    def __init__(self) -> None:
        self._ids = [bytearray() for _ in range(_BUCKETS)]
        self._locs = [bytearray() for _ in range(_BUCKETS)]
        self._pack_names: list[str] = []
        self._pack_no: dict[str, int] = {}
        self._members: list[array[int]] = []  # per pack: bucket << 32 | slot of each entry
        self._key_ids: list[bytes] = []
        self._key_no: dict[bytes, int] = {}
        self.count = 0  # copies indexed
        self.files: list[str] = []  # the index objects it was read from
        self.damaged: list[str] = []  # index files (or packs) that could not be read
        self.conflicts: set[str] = set()  # packs whose entries differ between index files

    @property
    def packs(self) -> Mapping[str, list[fmt.PackEntry]]:
        return _Packs(self)

    def subset(self, names: Sequence[str]) -> Mapping[str, list[fmt.PackEntry]]:
        """Like ``packs``, for these (indexed) packs only: entries are rebuilt one pack at a
        time as they are read, so writing them out never holds them all."""
        return _Packs(self, names)

    def _insert(self, pack_no: int, e: fmt.PackEntry) -> None:
        key_no = self._key_no.get(e.key_id)
        if key_no is None:
            key_no = self._key_no[e.key_id] = len(self._key_ids)
            self._key_ids.append(e.key_id)
        bucket = _bucket(e.blob_id)
        ids = self._ids[bucket]
        # The record first: a reader that finds the id always finds its record.
        self._locs[bucket] += _LOC.pack(
            pack_no, e.blob_type, e.offset, e.length, e.raw_length, key_no
        )
        self._members[pack_no].append(bucket << 32 | len(ids) // _ID)
        ids += e.blob_id
        self.count += 1

    def add_pack(self, pack: str, entries: Sequence[fmt.PackEntry]) -> None:
        pack_no = self._pack_no.get(pack)
        if pack_no is not None:
            known = self.entries(pack)
            if known == list(entries):
                return
            self.conflicts.add(pack)
            seen = set(known)
            entries = [e for e in entries if e not in seen]
        else:
            pack_no = self._pack_no[pack] = len(self._pack_names)
            self._pack_names.append(pack)
            self._members.append(array("Q"))
        for entry in entries:
            self._insert(pack_no, entry)

    def add_records(self, pack: str, records: memoryview | bytes) -> None:
        """:meth:`add_pack` for entries still encoded as in an index file (no PackEntry objects
        made: loading a large index is this loop)."""
        if pack in self._pack_no:
            self.add_pack(pack, fmt.entries_of(records))
            return
        pack_no = self._pack_no[pack] = len(self._pack_names)
        self._pack_names.append(pack)
        members = array("Q")
        self._members.append(members)
        ids_buckets, locs_buckets, key_no_of = self._ids, self._locs, self._key_no
        pack_loc = _LOC.pack
        for blob_type, blob_id, offset, length, raw_length, key_id in _RECORD.iter_unpack(records):
            key_no = key_no_of.get(key_id)
            if key_no is None:
                key_no = key_no_of[key_id] = len(self._key_ids)
                self._key_ids.append(key_id)
            bucket = (blob_id[0] << 6) | (blob_id[1] >> 2)
            ids = ids_buckets[bucket]
            locs_buckets[bucket] += pack_loc(pack_no, blob_type, offset, length, raw_length, key_no)
            members.append(bucket << 32 | len(ids) // _ID)
            ids += blob_id
        self.count += len(members)

    def _entry(self, bucket: int, slot: int) -> tuple[str, fmt.PackEntry]:
        pack_no, blob_type, offset, length, raw_length, key_no = _LOC.unpack_from(
            self._locs[bucket], slot * _LOC.size
        )
        blob_id = bytes(self._ids[bucket][slot * _ID : (slot + 1) * _ID])
        entry = fmt.PackEntry(blob_type, blob_id, offset, length, raw_length, self._key_ids[key_no])
        return self._pack_names[pack_no], entry

    def entries(self, pack: str) -> list[fmt.PackEntry]:
        """The entries indexed for ``pack``, in the order they were added (KeyError if none)."""
        members = self._members[self._pack_no[pack]]
        return [self._entry(m >> 32, m & 0xFFFFFFFF)[1] for m in members]

    def locations(self, blob_id: bytes) -> list[tuple[str, fmt.PackEntry]]:
        """Every stored copy of a blob, first-indexed first; CorruptFileError if it has none."""
        bucket = _bucket(blob_id)
        ids = self._ids[bucket]
        out = []
        slot = _find(ids, blob_id)
        while slot != -1:
            out.append(self._entry(bucket, slot))
            slot = _find(ids, blob_id, slot + 1)
        if not out:
            raise CorruptFileError(f"blob {blob_id.hex()[:16]} is not in the index (missing data)")
        return out

    def lookup(self, blob_id: bytes) -> tuple[str, fmt.PackEntry]:
        return self.locations(blob_id)[0]

    def __contains__(self, blob_id: object) -> bool:
        if not isinstance(blob_id, bytes) or len(blob_id) != _ID:
            return False
        return _find(self._ids[_bucket(blob_id)], blob_id) != -1

    def key_numbers(self, key_ids: Iterable[bytes]) -> frozenset[int]:
        """The internal numbers of these data keys (those the index knows)."""
        return frozenset(self._key_no[k] for k in key_ids if k in self._key_no)

    def has_under(self, blob_id: bytes, key_ids: set[bytes]) -> bool:
        """Whether a copy of the blob is sealed under one of these data keys."""
        bucket = _bucket(blob_id)
        ids, locs = self._ids[bucket], self._locs[bucket]
        slot = _find(ids, blob_id)
        while slot != -1:
            key_no = _LOC.unpack_from(locs, slot * _LOC.size)[5]
            if self._key_ids[key_no] in key_ids:
                return True
            slot = _find(ids, blob_id, slot + 1)
        return False

    def key_of(self, blob_id: bytes, key_ids: set[bytes] | None = None) -> bytes | None:
        """The data key of the first copy (under one of ``key_ids`` when given), or None."""
        bucket = _bucket(blob_id)
        ids, locs = self._ids[bucket], self._locs[bucket]
        slot = _find(ids, blob_id)
        while slot != -1:
            key_id: bytes = self._key_ids[_LOC.unpack_from(locs, slot * _LOC.size)[5]]
            if key_ids is None or key_id in key_ids:
                return key_id
            slot = _find(ids, blob_id, slot + 1)
        return None
