"""The backup engine: worker threads that chunk, hash, deduplicate, compress, encrypt and pack,
with one shared packer and packs uploaded in the background."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import blake3
import zstandard
from pyfastcdc import FastCDC

from sealbox.repo import format as fmt
from sealbox.repo.inputs import PipeReader, Stream, fill_file, open_file
from sealbox.repo.keys import DataKey
from sealbox.repo.packer import Buffer, Packer, alloc, compress_if_worth
from sealbox.repo.repository import Index, Repository, pack_path

__all__ = ["Engine", "Progress"]

SEGMENT = 8 * 1024 * 1024  # per-worker read buffer; at least twice the largest chunk
WORKERS = int(os.environ.get("SEALBOX_WORKERS", "0")) or max(2, min(4, (os.cpu_count() or 2)))
BATCH_FILES = 256
BATCH_BYTES = 32 * 1024 * 1024
UPLOADS_IN_FLIGHT = 1  # packs handed to the uploader and not yet stored (each ~14 MiB)
UPLOADS_IN_FLIGHT_REMOTE = 3


@dataclass
class Progress:
    """Counters the CLI renders; updated from worker threads (plain int adds under the GIL)."""

    files: int = 0
    bytes: int = 0
    total_files: int = 0
    total_bytes: int = 0
    on_update: Callable[[Progress], None] | None = None

    def add(self, files: int = 0, nbytes: int = 0) -> None:
        self.files += files
        self.bytes += nbytes
        if self.on_update is not None:
            self.on_update(self)


class Engine:
    """State shared by the walker and the workers of one backup run."""

    def __init__(
        self,
        repo: Repository,
        index: Index,
        progress: Progress,
        level: int = 1,
        reusable_keys: set[bytes] | None = None,
    ) -> None:
        self.repo, self.index, self.progress = repo, index, progress
        # With reusable_keys, only blobs sealed under those data keys are deduplicated against:
        # after a key ceremony, new snapshots must not depend on data only the old key opens.
        # The run's own data key joins them once it is made.
        self.restricted = reusable_keys is not None
        self.reusable_keys = set(reusable_keys or ())
        self.digests: dict[str, str] | None = None  # path -> BLAKE3 of the content, when asked
        self.lock = threading.Lock()
        # Blobs claimed and not yet in a flushed pack; a flushed pack's entries join the index
        # (so this stays within a pack or two, however many blobs the run stores).
        self.pending: set[bytes] = set()
        self.new_packs: list[str] = []
        self.local = threading.local()
        self._data_key: DataKey | None = None
        self.level = level
        # Packs are written (and fsynced) in the background while the next ones fill.
        self.uploader = ThreadPoolExecutor(max_workers=3, thread_name_prefix="sealbox-upload")
        self.uploads: list[Future[None]] = []
        # A disk gains nothing from more writes in flight; a network destination hides latency.
        in_flight = (
            UPLOADS_IN_FLIGHT_REMOTE
            if getattr(repo.backend, "round_trips", False)
            else UPLOADS_IN_FLIGHT
        )
        self.in_flight = threading.Semaphore(in_flight)
        self.failure: BaseException | None = None
        self.free_buffers: list[Buffer] = []
        chunker = repo.config.chunker
        self.cdc = FastCDC(
            chunker["avg"],
            min_size=chunker["min"],
            max_size=chunker["max"],
            seed=repo.keys.chunker_seed,
        )
        self.max_chunk = chunker["max"]
        self.id_key = repo.keys.id_key
        self.blobs_added = 0
        self.packer = Packer(
            lambda: self.data_key,
            repo.keys.index_key,
            repo.config.pack_size,
            self.max_chunk,
            self.upload,
            self.new_buffer,
            self.packed,
        )

    @property
    def data_key(self) -> DataKey:
        """This run's data key, made (and sealed to the recipients) when the first blob needs it."""
        with self.lock:
            if self._data_key is None:
                self._data_key = self.repo.new_data_key()
                self.reusable_keys.add(self._data_key.key_id)
            return self._data_key

    def packed(self, name: str, entries: list[fmt.PackEntry]) -> None:
        """A pack is full (its upload may still run): its blobs are known from now on."""
        with self.lock:
            self.index.add_pack(name, entries)
            self.new_packs.append(name)
            for entry in entries:
                self.pending.discard(entry.blob_id)

    def upload(self, name: str, buffer: Buffer, length: int) -> None:
        """Hand a full pack to the background uploader; block while too many are in flight."""
        if self.failure is not None:
            raise self.failure
        self.in_flight.acquire()

        def put() -> None:
            try:
                with memoryview(buffer) as view:
                    self.repo.backend.put(pack_path(name), view[:length], exclusive=False)
            except BaseException as exc:
                self.failure = exc
                raise
            finally:
                with self.lock:
                    self.free_buffers.append(buffer)  # reused: fresh memory is costly here
                self.in_flight.release()

        self.uploads.append(self.uploader.submit(put))

    def new_buffer(self, size: int) -> Buffer:
        with self.lock:
            for i, buffer in enumerate(self.free_buffers):
                if len(buffer) == size:
                    return self.free_buffers.pop(i)
        return alloc(size)

    def finish_uploads(self) -> None:
        """Wait for every pack to be stored; raise the first failure."""
        for future in self.uploads:
            future.result()
        self.uploader.shutdown()

    def thread_state(self) -> tuple[Buffer, zstandard.ZstdCompressor]:
        """This worker's read buffer and compressor (made on first use)."""
        state: tuple[Buffer, zstandard.ZstdCompressor] | None = getattr(self.local, "state", None)
        if state is None:
            state = (
                alloc(max(SEGMENT, 2 * self.max_chunk)),
                zstandard.ZstdCompressor(level=self.level),
            )
            self.local.state = state
        return state

    def keys_needed(self, refs: Iterable[bytes]) -> set[bytes]:
        """The data keys that open every blob of a snapshot (the copies this run built on).
        Called after :meth:`flush`, when every blob of the run is in the index."""
        keys: set[bytes] = set()
        accepted = self.reusable_keys if self.restricted else None
        for blob_id in refs:
            key = self.index.key_of(blob_id, accepted)
            if key is not None:
                keys.add(key)
        return keys

    def known(self, blob_id: bytes) -> bool:
        """Stored already (this run's packs included), under a data key this run may build on."""
        if self.restricted:
            return self.index.has_under(blob_id, self.reusable_keys)
        return blob_id in self.index

    def claim(self, blob_id: bytes) -> bool:
        """True if this caller must store the blob (nobody has it or is storing it)."""
        with self.lock:
            if self.known(blob_id) or blob_id in self.pending:
                return False
            self.pending.add(blob_id)
            self.blobs_added += 1
            return True

    def store(self, blob_type: int, data: memoryview | bytes) -> bytes:
        blob_id = blake3.blake3(data, key=self.id_key).digest()
        if self.claim(blob_id):
            self.put(blob_type, blob_id, data)
        return blob_id

    def put(self, blob_type: int, blob_id: bytes, data: memoryview | bytes) -> None:
        """Compress (when it pays), encrypt and pack a claimed blob."""
        payload = compress_if_worth(self.thread_state()[1], data)
        self.packer.add(blob_type, blob_id, payload, len(data))

    def put_many(self, blob_type: int, blobs: list[tuple[bytes, bytes]]) -> None:
        """:meth:`put` for claimed blobs handed over in a batch (the walker's trees)."""
        for blob_id, data in blobs:
            self.put(blob_type, blob_id, data)

    def file(self, path: str) -> tuple[list[str], int]:
        """Chunk and store one file; return its blob ids (hex) and the bytes read."""
        fd = open_file(path)
        try:
            if self.digests is None:
                return self.chunk_fd(fd)
            hasher = blake3.blake3()
            out = self.chunk_fd(fd, hasher=hasher)
            self.digests[path] = hasher.hexdigest()
            return out
        finally:
            os.close(fd)

    def stream(self, stream: Stream) -> tuple[list[str], int]:
        """Chunk and store what a producer writes (a database dump): no temporary file."""
        fd, finish = stream.open()
        reader = PipeReader(fd)
        try:
            out = self.chunk_fd(fd, reader.fill)
        except BaseException:
            finish(failed=True)  # stops the producer, so the reader sees the end of the pipe
            reader.stop()
            os.close(fd)
            raise
        reader.stop()
        os.close(fd)
        finish(failed=False)  # raises if the producer failed: the snapshot is then not published
        return out

    def chunk_fd(
        self,
        fd: int,
        fill: Callable[[int, memoryview, int], int] | None = None,
        hasher: Any = None,
    ) -> tuple[list[str], int]:
        _fill = fill or fill_file
        buffer = self.thread_state()[0]
        view = memoryview(buffer)
        ids: list[str] = []
        total = 0
        try:
            filled = _fill(fd, view, 0)
            while True:
                eof = filled < len(buffer)
                if filled <= self.cdc.min_size:  # what the chunker would return anyway, cheaper
                    pieces = [(0, filled)] if filled else []
                else:
                    pieces = [(c.offset, c.length) for c in self.cdc.cut_buf(view[:filled])]
                keep = len(pieces) if eof else len(pieces) - 1
                for offset, length in pieces[:keep]:
                    if hasher is not None:
                        hasher.update(view[offset : offset + length])
                    ids.append(self.store(fmt.BLOB_DATA, view[offset : offset + length]).hex())
                    total += length
                    self.progress.add(nbytes=length)
                if eof:
                    break
                start = pieces[-1][0]
                rest = filled - start
                view[:rest] = view[start:filled]
                filled = _fill(fd, view, rest)
        finally:
            view.release()
        self.progress.add(files=1)
        return ids, total

    def files(self, paths: list[str]) -> list[Any]:
        """Chunk and store a batch of files; per file, (ids, bytes) or the OSError it raised."""
        out: list[Any] = []
        for path in paths:
            try:
                out.append(self.file(path))
            except OSError as exc:
                out.append(exc)
        return out

    def flush(self) -> None:
        self.packer.flush()
        self.finish_uploads()
