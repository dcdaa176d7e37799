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
