"""Reading blobs back (restore, check --read-data): fetch, decrypt, decompress, verify the id."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import blake3
import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sealbox.errors import CorruptFileError, KeyMaterialError, SealboxError
from sealbox.repo import format as fmt
from sealbox.repo.repository import Index, Repository, pack_path

__all__ = ["MAX_BLOB", "BlobReader"]

STREAM_STEP = 1 << 20
# Frames stating more than this are decompressed a step at a time (chunks are at most 8 MiB; a
# large tree blob is rare): what a frame claims is not allocated before it is produced.
STREAM_ABOVE = 16 << 20
MAX_BLOB = fmt.MAX_SIZE["pack"]  # no chunk or tree blob comes near: bounds every allocation


class _PackCache:
    """Whole packs kept for a while, for backends where each request costs a round trip (S3,
    SFTP): a restore then makes one request per pack instead of one per blob."""

    def __init__(self, repo: Repository, capacity: int = 12) -> None:
        self.repo, self.capacity = repo, capacity
        self.packs: OrderedDict[str, bytes] = OrderedDict()
        self.lock = threading.Lock()
        self.loading: dict[str, threading.Lock] = {}

    def get(self, pack: str) -> bytes:
        with self.lock:
            if pack in self.packs:
                self.packs.move_to_end(pack)
                return self.packs[pack]
            loading = self.loading.setdefault(pack, threading.Lock())
        with loading:  # one download per pack, however many threads want it
            with self.lock:
                if pack in self.packs:
                    return self.packs[pack]
            data = self.repo.read_pack(pack)
            with self.lock:
                self.packs[pack] = data
                self.loading.pop(pack, None)
                while len(self.packs) > self.capacity:
                    self.packs.popitem(last=False)
            return data


class BlobReader:
    def __init__(self, repo: Repository, index: Index, identities: list[Any]) -> None:
        self.repo, self.index, self.identities = repo, index, identities
        self._ciphers: dict[bytes, AESGCM] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        remote = getattr(repo.backend, "round_trips", False)
        self._packs = _PackCache(repo) if remote else None

    def _cipher(self, key_id: bytes) -> AESGCM:
        with self._lock:
            cipher = self._ciphers.get(key_id)
            if cipher is None:
                cipher = AESGCM(self.repo.data_key(key_id, self.identities))
                self._ciphers[key_id] = cipher
            return cipher

    def _decompressor(self) -> zstandard.ZstdDecompressor:
        d: zstandard.ZstdDecompressor | None = getattr(self._local, "d", None)
        if d is None:
            d = self._local.d = zstandard.ZstdDecompressor()
        return d

    def decode(self, entry: fmt.PackEntry, stored: bytes | memoryview, where: str) -> bytes:
        """Plaintext of a stored blob; CorruptFileError names it if anything does not match."""
        if len(stored) != entry.length or entry.length < fmt.NONCE_LEN + fmt.TAG_LEN:
            raise CorruptFileError(f"{where}: blob {entry.blob_id.hex()[:16]} is truncated")
        nonce = bytes(stored[: fmt.NONCE_LEN])
        try:
            payload = self._cipher(entry.key_id).decrypt(
                nonce, stored[fmt.NONCE_LEN :], fmt.blob_aad(entry.blob_type, entry.blob_id)
            )
        except InvalidTag:
            raise CorruptFileError(
                f"{where}: blob {entry.blob_id.hex()[:16]} failed authentication (damaged)"
            ) from None
        if len(payload) < entry.raw_length:
            try:
                # A frame that states its size is given that much memory, whatever
                # max_output_size says: refuse one claiming more than the blob can be.
                claimed = zstandard.frame_content_size(payload)
                if claimed > entry.raw_length or entry.raw_length > MAX_BLOB:
                    raise CorruptFileError(
                        f"{where}: blob {entry.blob_id.hex()[:16]} claims an impossible length"
                    )
                if claimed < 0 or claimed > STREAM_ABOVE:  # -1: the frame does not say
                    payload = self._stream(payload, entry.raw_length)
                else:  # what Sealbox writes: exactly the stated size is allocated
                    payload = self._decompressor().decompress(
                        payload, max_output_size=entry.raw_length
                    )
            except zstandard.ZstdError as exc:
                raise CorruptFileError(
                    f"{where}: blob {entry.blob_id.hex()[:16]} does not decompress"
                ) from exc
        if (
            len(payload) != entry.raw_length
            or blake3.blake3(payload, key=self.repo.keys.id_key).digest() != entry.blob_id
        ):
            raise CorruptFileError(
                f"{where}: blob {entry.blob_id.hex()[:16]} does not match its id"
            )
        return payload

    def _stream(self, payload: bytes, limit: int) -> bytes:
        """A frame that does not state its size, decompressed a MiB at a time up to ``limit``
        (+1, to see that it is longer): memory follows what it really holds, not what the
        index claims (``max_output_size`` would allocate the claimed length at once)."""
        out = bytearray()
        with self._decompressor().stream_reader(payload) as reader:
            while len(out) <= limit and (
                part := reader.read(min(STREAM_STEP, limit + 1 - len(out)))
            ):
                out += part
        return bytes(out)

    def read(self, blob_id: bytes) -> bytes:
        """The blob's plaintext, from the first copy whose data key we can open (after a key
        change a blob may be stored twice, under an old and a new key)."""
        failure: SealboxError | None = None
        for pack, entry in self.index.locations(blob_id):
            where = pack_path(pack)
            if max(entry.length, entry.raw_length) > MAX_BLOB:  # an index entry is not trusted
                failure = failure or CorruptFileError(
                    f"{where}: blob {blob_id.hex()[:16]} has an impossible length"
                )
                continue
            try:
                if self._packs is not None:
                    stored: bytes | memoryview = memoryview(self._packs.get(pack))[
                        entry.offset : entry.offset + entry.length
                    ]
                else:
                    stored = self.repo.backend.get(where, entry.offset, entry.length)
                return self.decode(entry, stored, where)
            except (KeyMaterialError, CorruptFileError) as exc:
                failure = failure or exc
        if failure is None:  # no index names it: its pack (and index entry) went missing
            raise CorruptFileError(f"blob {blob_id.hex()[:16]} is missing (no pack holds it)")
        raise failure
