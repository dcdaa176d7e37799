"""One contract, every backend (docs: src/sealbox/backends/base.py). New backends join the params."""

from __future__ import annotations

import threading

import pytest

from sealbox.backends import open_backend
from sealbox.backends.memory import MemoryBackend
from sealbox.errors import DestinationError, NotFoundError


@pytest.fixture(params=["file", "memory", "s3", "sftp", "agent"])
def backend(request, tmp_path):
    if request.param == "file":
        yield open_backend(f"file://{tmp_path}/store")
    elif request.param == "s3":
        yield open_backend(request.getfixturevalue("s3_env"))
    elif request.param == "agent":
        backend = open_backend(request.getfixturevalue("agent_env"))
        yield backend
        backend.close()
    elif request.param == "sftp":
        backend = open_backend(request.getfixturevalue("sftp_env"))
        yield backend
        backend.close()
    else:
        MemoryBackend.reset("conformance")
        yield open_backend("memory://conformance")
        MemoryBackend.reset("conformance")


def test_roundtrip_and_ranges(backend):
    data = bytes(range(256)) * 1000
    backend.put("data/ab/abcdef", data)
    assert backend.get("data/ab/abcdef") == data
    assert backend.get("data/ab/abcdef", 1000, 10) == data[1000:1010]
    assert backend.get("data/ab/abcdef", len(data) - 4) == data[-4:]
    assert backend.stat("data/ab/abcdef").size == len(data)


def test_put_accepts_any_buffer(backend):
    backend.put("a", bytearray(b"xy"))
    backend.put("b", memoryview(b"0123")[1:3])
    assert backend.get("a") == b"xy" and backend.get("b") == b"12"


def test_missing_objects(backend):
    with pytest.raises(NotFoundError):
        backend.get("nope")
    with pytest.raises(NotFoundError):
        backend.stat("nope")
    backend.delete("nope")  # idempotent


def test_list_by_prefix(backend):
    for name in ("index/1", "index/2", "snapshots/1", "data/00/x"):
        backend.put(name, b"x")
    assert sorted(o.name for o in backend.list("index/")) == ["index/1", "index/2"]
    assert sorted(o.name for o in backend.list()) == [
        "data/00/x",
        "index/1",
        "index/2",
        "snapshots/1",
    ]


def test_overwrite_and_exclusive(backend):
    backend.put("k", b"one")
    backend.put("k", b"two")
    assert backend.get("k") == b"two"
    with pytest.raises(DestinationError):
        backend.put("k", b"three", exclusive=True)
    assert backend.get("k") == b"two"


def test_concurrent_exclusive_puts_have_one_winner(backend):
    wins = []

    def attempt(n):
        try:
            backend.put("locks/one", str(n).encode(), exclusive=True)
            wins.append(n)
        except DestinationError:
            pass

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and backend.get("locks/one") == str(wins[0]).encode()


@pytest.mark.parametrize("name", ["", "/x", "../x", "a/../b", "a//b", ".x", "a b"])
def test_unsafe_names_refused(backend, name):
    with pytest.raises(DestinationError):
        backend.put(name, b"x")


def test_delete_then_list(backend):
    backend.put("x/1", b"1")
    backend.delete("x/1")
    assert list(backend.list("x/")) == []


def test_cluster_lease_takeovers_have_one_winner_and_renewals_replace(backend):
    """The cluster lease (destinations/lease.py) on every backend: of racing standbys exactly one
    takes the next counter; the holder's renewal is replaced in place, its slot record kept."""
    from sealbox.destinations import lease
    from sealbox.errors import ObjectExistsError

    backend.put("other", b"x")  # a local destination's root must exist before anything lists it
    assert lease.current(backend) is None
    lease.take(backend, 1, "a")
    beat = lease.Beat(1, "a", slots={"system": 1.5})
    lease.write_beat(backend, beat)
    lease.write_beat(backend, beat)
    again = lease.read_beat(backend, 1)
    assert again is not None and (again.seq, again.slots) == (2, {"system": 1.5})
    winners: list[str] = []

    def attempt(n: int) -> None:
        try:
            lease.take(backend, 2, f"node{n}")
            winners.append(f"node{n}")
        except ObjectExistsError:
            pass

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    held = lease.current(backend)
    assert len(winners) == 1 and held is not None and (held.counter, held.node) == (2, winners[0])
