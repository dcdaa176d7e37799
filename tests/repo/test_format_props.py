"""Property tests: repository parsers fail only with CorruptFileError, whatever the bytes."""

from __future__ import annotations

import contextlib
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealbox.errors import CorruptFileError
from sealbox.repo import format as fmt
from sealbox.repo.repository import RepoConfig
from sealbox.repo.tree import decode_tree, node_name

KEY = bytes(range(32))
ENTRY = fmt.PackEntry(0, bytes(32), 0, 100, 200, bytes(32))
FUZZ = settings(max_examples=300, deadline=None)


@FUZZ
@given(st.binary(max_size=400))
def test_pack_header_parser(data):
    with pytest.raises(CorruptFileError):
        fmt.decode_pack_header(data, KEY, "p")


@FUZZ
@given(st.integers(0, 2000), st.integers(0, 7))
def test_pack_header_bit_flips(position, bit):
    data = bytearray(fmt.encode_pack_header([ENTRY, ENTRY], KEY))
    data[position % len(data)] ^= 1 << bit
    with pytest.raises(CorruptFileError):
        fmt.decode_pack_header(bytes(data), KEY, "p")


@FUZZ
@given(st.binary(max_size=400))
def test_index_refs_and_json_parsers(data):
    for parse in (
        lambda: fmt.decode_index(data, KEY, "i"),
        lambda: fmt.decode_refs(data, KEY, "r"),
        lambda: fmt.open_json(KEY, b"snapshot", data, "s"),
    ):
        with pytest.raises(CorruptFileError):
            parse()


@FUZZ
@given(st.binary(max_size=300))
def test_tree_and_config_parsers(data):
    try:
        for node in decode_tree(data, "t"):
            node_name(node)
    except CorruptFileError:
        pass
    with contextlib.suppress(CorruptFileError):
        RepoConfig.decode(data)


def test_roundtrips_and_kind_binding():
    packs = {os.urandom(32).hex(): [ENTRY, ENTRY]}
    assert fmt.decode_index(fmt.encode_index(packs, KEY), KEY, "i") == packs
    assert fmt.decode_pack_header(fmt.encode_pack_header([ENTRY], KEY), KEY, "p") == [ENTRY]
    ids = {os.urandom(32) for _ in range(5)}
    assert set(fmt.decode_refs(fmt.encode_refs(ids, KEY), KEY, "r")) == ids
    sealed = fmt.seal(KEY, b"index", b"payload")
    with pytest.raises(CorruptFileError):
        fmt.open_sealed(KEY, b"snapshot", sealed, "x")  # an index cannot pass for a snapshot


@pytest.mark.parametrize("name", ["..", ".", "a/b", "", "a\0b"])
def test_unsafe_tree_names_are_refused(name):
    with pytest.raises(CorruptFileError):
        node_name({"name": name})
