"""The cluster lease objects (docs/design/format.md §22): the documented bytes, and what a
hostile or broken destination cannot make a node believe."""

from __future__ import annotations

import pytest

from sealbox.backends.memory import MemoryBackend
from sealbox.destinations import lease
from sealbox.errors import CorruptFileError

VECTOR = b'{"format":"sealbox-lease-1","counter":7,"node":"pam-01a","taken":"2026-12-01T15:13:13Z"}'


@pytest.fixture
def store() -> MemoryBackend:
    MemoryBackend.reset("lease-format")
    return MemoryBackend("lease-format")


def test_the_documented_lease_decodes_and_encodes_to_the_same_bytes():
    held = lease.Lease.decode(VECTOR, 7)
    assert held == lease.Lease(7, "pam-01a", "2026-12-01T15:13:13Z")
    assert held.encode() == VECTOR
    beat = lease.Beat(7, "pam-01a", 3, "t", {"system": 1.5}, released=True)
    assert lease.Beat.decode(beat.encode(), 7) == beat


@pytest.mark.parametrize(
    "body",
    [
        VECTOR.replace(b'"counter":7', b'"counter":8'),  # renamed: a lease-7 saying it is 8
        VECTOR.replace(b"sealbox-lease-1", b"sealbox-lease-9"),
        VECTOR.replace(b'"node":"pam-01a"', b'"node":1'),
        b"not json",
        b"[]",
    ],
)
def test_a_lease_that_does_not_match_its_name_or_format_is_refused(body):
    with pytest.raises(CorruptFileError):
        lease.Lease.decode(body, 7)


def test_junk_names_never_pose_as_the_highest_counter(store):
    lease.take(store, 2, "pam-01a")
    for junk in ("cluster/lease-999", "cluster/lease-000000000009.tmp", "cluster/lease-x"):
        store.put(junk, VECTOR)
    held = lease.current(store)
    assert held is not None and (held.counter, held.node) == (2, "pam-01a")


def test_an_oversized_lease_object_is_not_read_whole(store):
    store.put("cluster/lease-000000000001", b" " * (lease.MAX_OBJECT + 1))
    with pytest.raises(CorruptFileError, match="larger than"):
        lease.current(store)


def test_a_renewal_with_bad_slots_is_refused(store):
    store.put("cluster/beat-000000000001", lease.Beat(1, "a").encode().replace(b"{}", b'{"x":"y"}'))
    with pytest.raises(CorruptFileError):
        lease.read_beat(store, 1)
