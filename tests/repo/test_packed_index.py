"""The packed in-memory index and id set, and the streamed files cache."""

from __future__ import annotations

import os
import random
import stat

from sealbox.repo import format as fmt
from sealbox.repo.filescache import MAGIC, FilesCache, walk_order
from sealbox.repo.index import IdSet, Index

KEY_A, KEY_B = b"\xaa" * 32, b"\xbb" * 32


def _ids(n: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(32) for _ in range(n)]


def _entries(ids: list[bytes], key: bytes = KEY_A) -> list[fmt.PackEntry]:
    return [fmt.PackEntry(i % 2, b, 100 * i, 50 + i, 60 + i, key) for i, b in enumerate(ids)]


def test_id_set_keeps_each_id_once_and_iterates_sorted():
    ids = _ids(5000)
    s = IdSet(ids + ids[:100])
    assert len(s) == 5000
    assert list(s) == sorted(ids)
    assert s.sorted_bytes() == b"".join(sorted(ids))
    assert all(i in s for i in ids) and b"\0" * 32 not in s
    s.discard(ids[0])
    assert ids[0] not in s and len(s) == 4999


def test_id_set_only_counts_aligned_matches():
    """An id that appears across two neighbours in a bucket is not a member."""
    a = b"\x01\x02" + b"\x11" * 30
    b = b"\x01\x02" + b"\x22" * 30
    s = IdSet([a, b])
    straddling = a[16:] + b[:16]
    assert straddling not in s


def test_index_finds_every_entry_and_rebuilds_packs():
    ids = _ids(3000)
    index = Index()
    index.add_pack("p1", _entries(ids[:1000]))
    index.add_pack("p2", _entries(ids[1000:]))
    assert index.count == 3000 and len(index.packs) == 2
    assert index.packs["p1"] == _entries(ids[:1000])
    assert index.packs["p2"] == _entries(ids[1000:])
    pack, entry = index.lookup(ids[1500])
    assert pack == "p2" and entry == _entries(ids[1000:])[500]
    assert ids[5] in index and b"\x00" * 32 not in index
    sub = index.subset(["p2"])
    assert list(sub) == ["p2"] and "p1" not in sub and sub["p2"] == index.packs["p2"]


def test_index_keeps_every_copy_in_order_and_filters_by_key():
    ids = _ids(10)
    index = Index()
    index.add_pack("old", _entries(ids, KEY_A))
    index.add_pack("new", _entries(ids[:3], KEY_B))
    where = index.locations(ids[1])
    assert [p for p, _ in where] == ["old", "new"]
    assert [e.key_id for _, e in where] == [KEY_A, KEY_B]
    assert index.has_under(ids[1], {KEY_B}) and not index.has_under(ids[5], {KEY_B})
    assert index.key_of(ids[1]) == KEY_A and index.key_of(ids[1], {KEY_B}) == KEY_B
    assert index.key_of(ids[5], {KEY_B}) is None


def test_index_merges_disagreeing_claims_about_a_pack():
    ids = _ids(4)
    index = Index()
    index.add_pack("p", _entries(ids[:2]))
    index.add_pack("p", _entries(ids[:2]))  # the same again: nothing changes
    assert not index.conflicts and index.count == 2
    index.add_pack("p", _entries(ids[1:]))  # ids[1] claimed at another place too
    assert index.conflicts == {"p"} and index.count == 5
    assert len(index.locations(ids[1])) == 2
    assert {e.blob_id for e in index.packs["p"]} == set(ids)


def _stat(size: int, ino: int) -> os.stat_result:
    # mode ino dev nlink uid gid size atime mtime ctime (seconds, then ns)
    fields = (stat.S_IFREG | 0o644, ino, 1, 1, 0, 0, size, 0, 0, 0, 0.0, 0.0, 0.0)
    return os.stat_result((*fields, 0, 1000 + ino, 2000 + ino))


def test_files_cache_is_read_back_in_walk_order_and_skips_what_the_walk_passed(tmp_path):
    path = tmp_path / "state" / "files.cache"
    dirs = ["/r/a/x", "/r/a", "/r/b", "/r"]
    assert sorted(dirs, key=lambda d: walk_order(os.fsencode(d))) == dirs
    everything = ["/etc/a", "/etc", "/r", "/"]  # a backup of "/": the root comes last
    assert sorted(everything, key=lambda d: walk_order(os.fsencode(d))) == everything
    cache = FilesCache(path).load()
    for n, d in enumerate(dirs):
        cache.remember(d, [(f"f{n}", _stat(n, 10 + n), [bytes([n]) * 32])])
    cache.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(MAGIC)
    again = FilesCache(path).load()
    assert again.directory("/r/a/x") == {b"f0": (0, 1010, 2010, 10, [b"\0" * 32])}
    assert again.directory("/r/b") != {}  # /r/a is passed over: its record is dropped
    assert again.directory("/r/a") == {}
    record = again.directory("/r")
    assert FilesCache.lookup(record, "f3", _stat(3, 13)) == [b"\3" * 32]
    assert FilesCache.lookup(record, "f3", _stat(4, 13)) is None  # another size
    assert FilesCache.lookup(record, "f3", _stat(3, 99)) is None  # another inode
    again.abandon()
    assert path.exists() and not list(path.parent.glob(".files.cache.*"))


def test_a_damaged_files_cache_costs_only_rereading(tmp_path):
    path = tmp_path / "files.cache"
    cache = FilesCache(path).load()
    cache.remember("/r/a", [("f", _stat(1, 1), [b"\1" * 32])])
    cache.remember("/r/b", [("g", _stat(1, 2), [b"\2" * 32])])
    cache.save()
    data = bytearray(path.read_bytes())
    path.write_bytes(bytes(data[: len(data) - 5]))  # the second record truncated
    again = FilesCache(path).load()
    assert again.directory("/r/a") != {}
    assert again.directory("/r/b") == {}
    path.write_bytes(b"junk" * 100)
    assert FilesCache(path).load().directory("/r/a") == {}


def test_index_loaded_from_encoded_records_equals_one_built_from_entries():
    ids = _ids(300)
    key = b"\x01" * 32
    data = fmt.encode_index({"aa" * 32: _entries(ids[:200]), "bb" * 32: _entries(ids[200:])}, key)
    loaded, built = Index(), Index()
    for pack, records in fmt.index_records(data, key, "index/x"):
        loaded.add_records(pack, records)
    built.add_pack("aa" * 32, _entries(ids[:200]))
    built.add_pack("bb" * 32, _entries(ids[200:]))
    assert dict(loaded.packs) == dict(built.packs) and loaded.count == 300
    assert loaded.locations(ids[250]) == built.locations(ids[250])
    loaded.add_records("aa" * 32, fmt.index_records(data, key, "index/x")[1][1])
    assert loaded.conflicts == {"aa" * 32}  # the same pack claimed with other entries


def test_index_holds_more_data_keys_than_sixteen_bits_count():
    """A data key per run: a recordings repository makes tens of thousands a year."""
    ids = _ids(70_000)
    index = Index()
    for n in range(0, 70_000, 1000):
        entries = [
            fmt.PackEntry(0, ids[n + i], i, 10, 10, (n + i).to_bytes(32, "big"))
            for i in range(1000)
        ]
        index.add_pack(f"{n:064x}", entries)
    assert index.key_of(ids[69_999]) == (69_999).to_bytes(32, "big")
