"""Blobs in, packs out: compress (when it pays), encrypt under the run's data key, pack, upload.

Each worker thread owns a Packer (its own buffer, compressor and cipher), so the hot path takes
no lock: buffers are reused, AES-GCM writes straight into the pack buffer (``encrypt_into``),
and zstd and BLAKE3 run without the GIL.
"""

from __future__ import annotations

import mmap
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sealbox.repo import format as fmt
from sealbox.repo.keys import DataKey

__all__ = ["Buffer", "Packer", "alloc", "compress_if_worth"]

Buffer = mmap.mmap


def alloc(size: int) -> Buffer:
    """A large zeroed buffer whose pages cost memory only once written.

    ``bytearray(n)`` writes n zero bytes at once, so three 21 MiB pack buffers would be 64 MiB of
    resident memory before the first blob; an anonymous mapping is filled lazily by the kernel.
    """
    return mmap.mmap(-1, size)


SAMPLE = 64 * 1024
MAX_ENTRIES = 16384  # blobs per pack: bounds the header (81 bytes an entry)
_ENTRY_BYTES = 81
# Compress a blob only if a sample shrinks by at least this fraction (see format.md).
MIN_GAIN = 0.03


def compress_if_worth(
    compressor: zstandard.ZstdCompressor, data: memoryview | bytes
) -> bytes | memoryview:
    """zstd-compressed bytes when they are smaller, else the data itself.

    A large chunk is judged by a 64 KiB sample first, so incompressible data (session
    recordings, archives) costs one small trial instead of a full compression.
    """
    if len(data) > 2 * SAMPLE:
        sample = compressor.compress(data[:SAMPLE])
        if len(sample) > (1 - MIN_GAIN) * SAMPLE:
            return data
    packed = compressor.compress(data)
    return packed if len(packed) < (1 - MIN_GAIN) * len(data) else data


@dataclass
class FlushedPack:
    name: str
    size: int
    blobs: int
    stored: int  # bytes of its blobs (nonce + ciphertext + tag)


class Packer:
    """One pack being filled, shared by all workers of a run (thread-safe).

    Workers compress outside (each has its own compressor); only the AES-GCM encryption into the
    buffer happens under the lock (about 0.2 ms a MiB), so one buffer serves every thread and the
    resident memory of a run is one pack plus the one being uploaded.
    """

    def __init__(
        self,
        data_key: Callable[[], DataKey],
        index_key: bytes,
        pack_size: int,
        max_blob: int,
        upload: Callable[[str, Buffer, int], None],
        new_buffer: Callable[[int], Buffer] | None = None,
        on_flush: Callable[[str, list[fmt.PackEntry]], None] | None = None,
    ) -> None:
        self.data_key, self.index_key, self.pack_size = data_key, index_key, pack_size
        self._cipher: tuple[bytes, AESGCM] | None = None
        # Room for one more blob of the largest size past the target, plus nonce, tag and header.
        self.new_buffer = new_buffer or alloc
        self.capacity = pack_size + max_blob + MAX_ENTRIES * _ENTRY_BYTES + 4096
        self.buffer = self.new_buffer(self.capacity)
        self.view = memoryview(self.buffer)
        self.pos = 0
        self.entries: list[fmt.PackEntry] = []
        self.upload = upload
        self.on_flush = on_flush
        self.flushed: list[FlushedPack] = []  # name and size only: the entries go to on_flush
        self.stored_bytes = 0
        self.nonce_prefix = os.urandom(4)
        self.counter = 0
        self.lock = threading.Lock()

    def _key(self) -> tuple[bytes, AESGCM]:
        if self._cipher is None:
            key = self.data_key()
            self._cipher = (key.key_id, AESGCM(key.key))
        return self._cipher

    def add(
        self, blob_type: int, blob_id: bytes, payload: memoryview | bytes, raw_length: int
    ) -> None:
        """Store a blob whose payload is already compressed (or not, if that did not pay)."""
        size = fmt.NONCE_LEN + len(payload) + fmt.TAG_LEN
        with self.lock:
            key_id, cipher = self._key()
            if self.pos + size + (len(self.entries) + 1) * _ENTRY_BYTES + 4096 > len(self.buffer):
                self._flush()
                if size + MAX_ENTRIES * _ENTRY_BYTES + 4096 > len(
                    self.buffer
                ):  # never with our chunker
                    self.view.release()
                    self.buffer = alloc(size + MAX_ENTRIES * _ENTRY_BYTES + 4096)
                    self.view = memoryview(self.buffer)
            start = self.pos
            # Unique per (data key, nonce): a random 4-byte prefix per packer and a counter; a data
            # key lives for one run, which has one packer.
            self.counter += 1
            nonce = self.nonce_prefix + self.counter.to_bytes(8, "big")
            self.view[start : start + fmt.NONCE_LEN] = nonce
            cipher.encrypt_into(
                nonce,
                payload,
                fmt.blob_aad(blob_type, blob_id),
                self.view[start + fmt.NONCE_LEN : start + size],
            )
            self.pos += size
            self.entries.append(fmt.PackEntry(blob_type, blob_id, start, size, raw_length, key_id))
            self.stored_bytes += size
            if self.pos >= self.pack_size or len(self.entries) >= MAX_ENTRIES:
                self._flush()

    def flush(self) -> None:
        with self.lock:
            self._flush()

    def _flush(self) -> None:
        if not self.entries:
            return
        header = fmt.encode_pack_header(self.entries, self.index_key)
        end = self.pos + len(header)  # room reserved by add()
        self.view[self.pos : end] = header
        name = fmt.content_name(self.view[:end])
        # The buffer goes to the uploader (which may write it in the background); we take a new one.
        buffer = self.buffer
        self.view.release()
        self.buffer = self.new_buffer(self.capacity)
        self.view = memoryview(self.buffer)
        self.upload(name, buffer, end)
        self.flushed.append(
            FlushedPack(name, end, len(self.entries), sum(e.length for e in self.entries))
        )
        if self.on_flush is not None:
            self.on_flush(name, self.entries)
        self.entries = []
        self.pos = 0
