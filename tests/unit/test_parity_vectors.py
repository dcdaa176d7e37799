"""Golden vectors of parity objects (docs/design/format.md §9a): the bytes any implementation of
the format must produce, and the repair argument checked exhaustively on small objects."""

from __future__ import annotations

import hashlib

import pytest

from sealbox.errors import CorruptFileError
from sealbox.repo import parity as par

SMALL_NAME = "refs/" + "00" * 32
SMALL_PARITY = (
    "5342587201000000070010000100000000000000072df1d1bb14ea07907a98fa88d8283d879e088f10354a97"
    "649dc2cf2aeaa0a12f0045726566732f30303030303030303030303030303030303030303030303030303030"
    "3030303030303030303030303030303030303030303030303030303030303030303030302df1d1bb14ea0790"
    "7a98fa88d8283d872df1d1bb14ea07907a98fa88d8283d8741e460b0b28b05653dbb202b5ab10b348b6eb1e8"
    "84ea4bc6a5c7cc267333db667365616c626f78"
)
THREE_SHARES = bytes(range(256)) * 48  # 12,288 bytes: three 4 KiB shares, two stripe groups
THREE_NAME = "data/00/" + "11" * 32
THREE_SHA256 = "a290a488bc17e0947cdc8f11480422864d2f8d87ab5cf64525237d37d11c2a57"


def test_small_object_vector():
    """7 bytes: one share of 7 bytes, one group, and its one parity share is a copy (k = 1)."""
    blob = par.encode_parity(SMALL_NAME, b"sealbox")
    assert blob.hex() == SMALL_PARITY
    parity = par.decode_parity(blob, "v")
    assert (parity.share_size, parity.groups, parity.name) == (7, 1, SMALL_NAME)
    assert bytes(parity.parity_shares[0]) == b"sealbox"
    assert par.rebuild(parity, None) == b"sealbox"


def test_three_share_vector():
    blob = par.encode_parity(THREE_NAME, THREE_SHARES)
    assert len(blob) == 8431 and hashlib.sha256(blob).hexdigest() == THREE_SHA256
    parity = par.decode_parity(blob, "v")
    assert (parity.share_size, parity.groups, len(parity.parity_shares)) == (4096, 2, 2)
    # group 1 holds share 1 alone: its parity share is a copy of it
    assert bytes(parity.parity_shares[1]) == THREE_SHARES[4096:8192]


@pytest.mark.parametrize("size", [1, 100, 4096, 4097, 8192, 12_289, 70_000, 300_000])
def test_any_damaged_4_kib_region_is_rebuilt(size):
    """The repair argument, exhaustively at every offset step of 512 bytes (and the ends)."""
    data = bytes((i * 7 + size) % 251 for i in range(size))
    parity = par.decode_parity(par.encode_parity("data/00/x", data), "v")
    offsets = sorted({*range(0, size, 512), size - 1, max(0, size - 4096)})
    for offset in offsets:
        damaged = bytearray(data)
        end = min(size, offset + par.SHARE_SIZE)
        damaged[offset:end] = bytes(b ^ 0xFF for b in damaged[offset:end])
        assert par.rebuild(parity, bytes(damaged)) == data, offset


def test_truncated_and_missing_objects():
    data = bytes(range(256)) * 4  # 1 KiB: one share
    parity = par.decode_parity(par.encode_parity("datakeys/x", data), "v")
    assert par.rebuild(parity, data[:100]) == data
    assert par.rebuild(parity, None) == data
    big = bytes(range(256)) * 400  # 25 shares, two groups
    parity = par.decode_parity(par.encode_parity("data/00/x", big), "v")
    with pytest.raises(CorruptFileError, match="more than"):
        par.rebuild(parity, None)


def test_a_damaged_header_is_refused_not_used():
    blob = bytearray(par.encode_parity("data/00/x", THREE_SHARES))
    blob[30] ^= 0x01  # inside the object digest
    with pytest.raises(CorruptFileError, match="header damaged"):
        par.decode_parity(bytes(blob), "p")
    blob = bytearray(par.encode_parity("data/00/x", THREE_SHARES))
    blob[4] = 0x02  # the version byte (read before the header digest is checked)
    with pytest.raises(CorruptFileError, match="version 2 is not supported"):
        par.decode_parity(bytes(blob), "p")


def test_policy_parsing():
    assert par.parse_policy("6.25%") == par.ParityPolicy(k=16, m=1)
    assert par.parse_policy("10%") == par.ParityPolicy(k=10, m=1)
    assert par.parse_policy("32+2") == par.ParityPolicy(k=32, m=2)
    for bad in ("0%", "80%", "lots", "0+1", "4+9"):
        with pytest.raises(ValueError):
            par.parse_policy(bad)


def test_m_parity_shares_rebuild_m_lost_shares_of_a_group():
    """With 32+2 a group loses two shares (or one, and its first parity share) and is rebuilt
    from the second parity share: the code numbers each parity share in its group."""
    data = bytes((i * 13) % 251 for i in range(40 * 4096))  # 40 shares, 2 groups of 20
    parity = par.decode_parity(par.encode_parity("data/00/x", data, par.ParityPolicy(32, 2)), "v")
    assert (parity.groups, len(parity.parity_shares)) == (2, 4)
    damaged = bytearray(data)
    for share in (0, 2):  # both in group 0
        damaged[share * 4096 + 7] ^= 0x01
    assert parity.damaged_shares(bytes(damaged)) == [0, 2]
    assert par.rebuild(parity, bytes(damaged)) == data
    one = bytearray(data)
    one[4096 + 9] ^= 0x01  # share 1, group 1, whose first parity share is damaged too
    shares = [bytes(s) for s in parity.parity_shares]
    shares[2] = bytes(len(shares[2]))
    hurt = par.Parity(**{**parity.__dict__, "parity_shares": [memoryview(s) for s in shares]})
    assert hurt.damaged_parity_shares() == [2]
    assert par.rebuild(hurt, bytes(one)) == data
    shares[3] = bytes(len(shares[3]))  # and its second: nothing left to rebuild share 1 with
    worse = par.Parity(**{**parity.__dict__, "parity_shares": [memoryview(s) for s in shares]})
    with pytest.raises(CorruptFileError, match="1 damaged share"):
        par.rebuild(worse, bytes(one))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b[:-1], "truncated parity object"),
        (lambda b: b[:20], "truncated parity object"),
        (lambda b: b[: par._HEAD.size], "truncated parity object"),
        (lambda b: b"SBXs" + b[4:], "not a parity object"),
        (lambda b: b[:9] + (0).to_bytes(2, "big") + b[11:], "out of range"),
        (lambda b: b[:11] + (9).to_bytes(2, "big") + b[13:], "out of range"),
        (lambda b: b[:5] + (4097).to_bytes(4, "big") + b[9:], "out of range"),
        (lambda b: b[:5] + (4000).to_bytes(4, "big") + b[9:], "out of range"),
    ],
)
def test_malformed_parity_objects_are_refused_by_name(change, message):
    blob = par.encode_parity(THREE_NAME, THREE_SHARES)
    with pytest.raises(CorruptFileError, match=message) as caught:
        par.decode_parity(change(blob), "parity/x")
    assert str(caught.value).startswith("parity/x: ")


def test_policy_bounds():
    assert par.ParityPolicy(128, 8).label == "6.25%"
    assert par.ParityPolicy(1, 2).m == 2  # a copy-like policy for one-share objects
    for k, m, copies in (
        (0, 1, 1),
        (129, 1, 1),
        (16, 0, 1),
        (16, 9, 1),
        (4, 5, 1),
        (16, 1, 0),
        (16, 1, 5),
    ):
        with pytest.raises(ValueError):
            par.ParityPolicy(k, m, copies)
    assert par.parse_policy("OFF") is None and par.parse_policy(" 5% ") == par.ParityPolicy(20, 1)
    assert par.parse_policy("50%") == par.ParityPolicy(2, 1)
    assert par.parse_policy("1%") == par.ParityPolicy(100, 1)
