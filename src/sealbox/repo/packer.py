"""Blobs in, packs out: compress (when it pays), encrypt under the run's data key, pack, upload.

Each worker thread owns a Packer (its own buffer, compressor and cipher), so the hot path takes
no lock: buffers are reused, AES-GCM writes straight into the pack buffer (``encrypt_into``),
and zstd and BLAKE3 run without the GIL.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sealbox.repo import format as fmt
from sealbox.repo.keys import DataKey

__all__ = ["Packer", "compress_if_worth"]

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
    entries: list[fmt.PackEntry] = field(default_factory=list)


class Packer:
    def __init__(
        self,
        data_key: DataKey,
        index_key: bytes,
        pack_size: int,
        max_blob: int,
        upload: Callable[[str, memoryview], None],
        level: int = 3,
    ) -> None:
        self.data_key, self.index_key, self.pack_size = data_key, index_key, pack_size
        self.cipher = AESGCM(data_key.key)
        self.compressor = zstandard.ZstdCompressor(level=level)
        # Room for one more blob of the largest size past the target, plus nonce and tag.
        self.buffer = bytearray(pack_size + max_blob + MAX_ENTRIES * _ENTRY_BYTES + 4096)
        self.view = memoryview(self.buffer)
        self.pos = 0
        self.entries: list[fmt.PackEntry] = []
        self.upload = upload
        self.flushed: list[FlushedPack] = []
        self.stored_bytes = 0

    def add(
        self, blob_type: int, blob_id: bytes, data: memoryview | bytes, compress: bool = True
    ) -> None:
        payload = compress_if_worth(self.compressor, data) if compress else data
        size = fmt.NONCE_LEN + len(payload) + fmt.TAG_LEN
        if self.pos + size + (len(self.entries) + 1) * _ENTRY_BYTES + 4096 > len(self.buffer):
            self.flush()
            if size + MAX_ENTRIES * _ENTRY_BYTES + 4096 > len(
                self.buffer
            ):  # never with our chunker
                self.view.release()
                self.buffer = bytearray(size + MAX_ENTRIES * _ENTRY_BYTES + 4096)
                self.view = memoryview(self.buffer)
        start = self.pos
        nonce = os.urandom(fmt.NONCE_LEN)
        self.view[start : start + fmt.NONCE_LEN] = nonce
        self.cipher.encrypt_into(
            nonce,
            payload,
            fmt.blob_aad(blob_type, blob_id),
            self.view[start + fmt.NONCE_LEN : start + size],
        )
        self.pos += size
        self.entries.append(
            fmt.PackEntry(blob_type, blob_id, start, size, len(data), self.data_key.key_id)
        )
        self.stored_bytes += size
        if self.pos >= self.pack_size or len(self.entries) >= MAX_ENTRIES:
            self.flush()

    def flush(self) -> None:
        if not self.entries:
            return
        header = fmt.encode_pack_header(self.entries, self.index_key)
        end = self.pos + len(header)  # room reserved by add()
        self.view[self.pos : end] = header
        pack = self.view[:end]
        name = fmt.content_name(pack)
        self.upload(name, pack)
        self.flushed.append(FlushedPack(name, end, self.entries))
        self.entries = []
        self.pos = 0
