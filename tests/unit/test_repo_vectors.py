"""Golden vectors of the repository format (docs/design/format.md part II): a sealed object, a
blob, a pack header, an index file and a sealed snapshot header. Keys are fixed byte ranges and
the one random input, the 12-byte nonce, is fixed at ``00 .. 0b``; the bytes below are what any
implementation of the format must produce and read."""

from __future__ import annotations

import hashlib
import struct
from types import SimpleNamespace

import blake3
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sealbox.errors import CorruptFileError
from sealbox.repo import format as fmt
from sealbox.repo.blobs import BlobReader
from sealbox.repo.repository import Snapshot
from tests.unit.test_repo_signatures import KEY, TRUST, _snapshot

INDEX_KEY = bytes(range(32))
DATA_KEY = bytes(range(32, 64))
ID_KEY = bytes(range(64, 96))
KEY_ID = bytes(range(96, 128))
NONCE = bytes(range(12))
PLAIN = b"hello, sealbox\n"

SEALED_REFS = "000102030405060708090a0b3467b777a78aba9bd4cf57065067226b68a19c78eaf37c"
BLOB_ID = "761fbdaaa5649162d4075bf59d89bc7a4095fb5eec3bc574b80aa2061cca4305"
BLOB_AAD = "534258620200" + BLOB_ID
STORED_BLOB = (
    "000102030405060708090a0b343731cb2519cb9fd998a5a4490b54a8b1a05d4669c059d2b9a383ae2ab603"
)
PACK_HEADER = (
    "000102030405060708090a0b14408e6bc5e5c21a8d3788361b4c1cfce102806f05e6d6c04227707e43853b"
    "7775a8a45ea9ddd8db71a47fed88872838ee59608d71d6a3da30f74b7b7b8790889754af10b8bd4b0f7324"
    "db1c9cfb7b9e4ff2b0180d1f2e16825a7efcb2c7a0dd907ed124a5cc7bbd6500000075"
)
PACK_NAME = "79a02e04f7729e9abb89f31c8f36f03922cfe5da6af3b57077f1203b92053405"
INDEX_FILE = (
    "000102030405060708090a0b6fb7f9e6e59c0b188d41978bb090d8438721f5aa6ac0d68f24e8d375244bcf"
    "57db7a5d49dfb6e3b84f367ad98d872838ef591692e77c06beaef5fe1e431668674c4686ef288fca5ad920"
    "12644d8912227b8fc96276635368fdfd9ecc78dbb98dcbf73987c622ac7ff87b56db221e4d12d40812da91"
    "b651ef3b882fb4f89d1273c52de846224e80e30e011886c1b24ea02078"
)
SNAPSHOT_SHA256 = "e46d811a689f2aba4af2296d122d30dbba1c7a613ec9cf62ea6c8405fdace974"


@pytest.fixture
def fixed_nonce(monkeypatch):
    monkeypatch.setattr(fmt.os, "urandom", lambda n: NONCE[:n])


def _entry() -> fmt.PackEntry:
    return fmt.PackEntry(0, bytes.fromhex(BLOB_ID), 0, len(STORED_BLOB) // 2, len(PLAIN), KEY_ID)


def test_sealed_object(fixed_nonce):
    assert fmt.seal(INDEX_KEY, b"refs", b"sealbox").hex() == SEALED_REFS
    assert fmt.open_sealed(INDEX_KEY, b"refs", bytes.fromhex(SEALED_REFS), "v") == b"sealbox"
    with pytest.raises(CorruptFileError, match="authentication failed"):
        fmt.open_sealed(INDEX_KEY, b"index", bytes.fromhex(SEALED_REFS), "v")  # another kind


def test_blob():
    blob_id = blake3.blake3(PLAIN, key=ID_KEY).digest()
    assert blob_id.hex() == BLOB_ID
    assert fmt.blob_aad(fmt.BLOB_DATA, blob_id).hex() == BLOB_AAD
    stored = NONCE + AESGCM(DATA_KEY).encrypt(NONCE, PLAIN, fmt.blob_aad(fmt.BLOB_DATA, blob_id))
    assert stored.hex() == STORED_BLOB
    # Sealbox's reader opens it (the repository reduced to the two keys it needs).
    repo = SimpleNamespace(
        backend=None, keys=SimpleNamespace(id_key=ID_KEY), data_key=lambda key_id, ids: DATA_KEY
    )
    reader = BlobReader(repo, None, [])  # type: ignore[arg-type]
    assert reader.decode(_entry(), bytes.fromhex(STORED_BLOB), "v") == PLAIN
    swapped = fmt.PackEntry(fmt.BLOB_TREE, blob_id, 0, len(stored), len(PLAIN), KEY_ID)
    with pytest.raises(CorruptFileError, match="failed authentication"):
        reader.decode(swapped, stored, "v")  # the type is bound by the AAD


def test_pack_header(fixed_nonce):
    header = fmt.encode_pack_header([_entry()], INDEX_KEY)
    assert header.hex() == PACK_HEADER
    pack = bytes.fromhex(STORED_BLOB) + header
    assert fmt.content_name(pack) == PACK_NAME
    assert fmt.decode_pack_header(pack, INDEX_KEY, "v") == [_entry()]
    body = fmt.open_sealed(INDEX_KEY, b"pack", header[:-4], "v")
    assert body == b"SBXp" + struct.pack(
        ">IB32sQII32s", 1, 0, bytes.fromhex(BLOB_ID), 0, 43, 15, KEY_ID
    )


def test_index_file(fixed_nonce):
    assert fmt.decode_index(bytes.fromhex(INDEX_FILE), INDEX_KEY, "v") == {PACK_NAME: [_entry()]}
    # The plaintext inside the zstd frame, byte for byte (a zstd version may compress it to
    # other bytes, so the sealed file is checked by reading it, and its body by this layout).
    raw = fmt.open_sealed(INDEX_KEY, b"index", bytes.fromhex(INDEX_FILE), "v")
    import zstandard

    body = zstandard.ZstdDecompressor().decompress(raw)
    entry = struct.pack(">B32sQII32s", 0, bytes.fromhex(BLOB_ID), 0, 43, 15, KEY_ID)
    assert body == struct.pack(">I", 1) + bytes.fromhex(PACK_NAME) + struct.pack(">I", 1) + entry
    again = fmt.encode_index({PACK_NAME: [_entry()]}, INDEX_KEY)
    assert fmt.decode_index(again, INDEX_KEY, "v") == {PACK_NAME: [_entry()]}


def test_sealed_snapshot_header(fixed_nonce):
    snapshot = _snapshot()
    snapshot.sign(KEY, [])
    data = fmt.seal_json(INDEX_KEY, b"snapshot", snapshot.to_dict())
    assert hashlib.sha256(data).hexdigest() == SNAPSHOT_SHA256
    doc = fmt.open_json(INDEX_KEY, b"snapshot", data, "v")
    back = Snapshot.decode(fmt.content_name(data), doc, "v")
    back.check("44" * 16, TRUST, "v")
    assert back.verified and back.tree == "11" * 32
