"""Backup: walk the paths, chunk, deduplicate, compress, encrypt and pack; then publish.

Pipeline: the main thread walks the tree (stat, excludes, files cache) and hands each changed
file to a pool of workers; each worker reads through a reused buffer, cuts chunks (pyfastcdc),
hashes them (keyed BLAKE3), skips the ones the repository or another worker already has, and
feeds its own Packer (zstd, AES-GCM, upload). All of those release the GIL, so two cores stay busy.

Publishing order (crash-safe at every point): packs as they fill; then one index file naming
them; then the reference list; then the snapshot. A crash leaves only unreferenced packs, which
the next backup finds, indexes and reuses.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import fnmatch
import grp
import hashlib
import os
import pwd
import queue
import socket
import stat
import termios
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import blake3
import zstandard
from pyfastcdc import FastCDC

from sealbox.errors import NotFoundError, SealboxError
from sealbox.repo import format as fmt
from sealbox.repo.filescache import FilesCache
from sealbox.repo.keys import DataKey
from sealbox.repo.locks import Lock
from sealbox.repo.packer import Buffer, Packer, alloc, compress_if_worth
from sealbox.repo.repository import Index, Repository, Snapshot, pack_path
from sealbox.repo.tree import encode_tree, kind_of, set_node_name

__all__ = ["STREAM_DIR", "BackupResult", "Progress", "Stream", "bytes_stream", "run_backup"]

SEGMENT = 8 * 1024 * 1024  # per-worker read buffer; at least twice the largest chunk
WORKERS = int(os.environ.get("SEALBOX_WORKERS", "0")) or max(2, min(4, (os.cpu_count() or 2)))
_O_NOATIME = getattr(os, "O_NOATIME", 0)
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


@dataclass
class Stream:
    """Bytes produced during the backup, stored as a file of the snapshot (``.sealbox/NAME``).

    ``open`` starts the producer and returns a readable descriptor and a ``finish(failed)`` that
    waits for the producer and raises a SealboxError if it did not succeed.
    """

    name: str
    open: Callable[[], tuple[int, Callable[..., None]]]


STREAM_DIR = ".sealbox"


def bytes_stream(name: str, produce: Callable[[], bytes | bytearray]) -> Stream:
    """A Stream of bytes made in memory (an inventory, an SQLite image), fed through a pipe."""

    def open_() -> tuple[int, Callable[..., None]]:
        data = produce()
        read_fd, write_fd = os.pipe()
        errors: list[OSError] = []

        def feed() -> None:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(write_fd, view[: 1 << 20]) :]
            except OSError as exc:
                errors.append(exc)
            finally:
                os.close(write_fd)

        thread = threading.Thread(target=feed, daemon=True)
        thread.start()

        def finish(failed: bool = False) -> None:
            thread.join()
            if errors and not failed:
                raise SealboxError(f"{name}: {errors[0].strerror}")

        return read_fd, finish

    return Stream(name=name, open=open_)


@dataclass
class BackupResult:
    snapshot: Snapshot
    files_new: int = 0
    files_unchanged: int = 0
    bytes_read: int = 0
    blobs_added: int = 0
    bytes_added: int = 0  # stored (compressed, encrypted) bytes of new blobs
    packs: int = 0
    recovered_packs: int = 0
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    digests: dict[str, str] = field(default_factory=dict)
    contents: dict[str, list[str]] = field(
        default_factory=dict
    )  # with only_files: path -> blob ids


@cache
def _user(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


@cache
def _group(gid: int) -> str | None:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return None


def _xattrs(path: str) -> dict[str, str] | None:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return None
    if not names:
        return None
    import base64

    out = {}
    for name in names:
        try:
            out[name] = base64.b64encode(os.getxattr(path, name, follow_symlinks=False)).decode()
        except OSError:
            continue
    return out or None


def _node(name: str, st: os.stat_result, path: str) -> dict[str, Any]:
    node: dict[str, Any] = {
        "type": kind_of(st.st_mode),
        "mode": stat.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
        "user": _user(st.st_uid),
        "group": _group(st.st_gid),
        "mtime_ns": st.st_mtime_ns,
    }
    set_node_name(node, name)
    if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
        node["inode"], node["device"], node["links"] = st.st_ino, st.st_dev, st.st_nlink
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        node["rdev"] = st.st_rdev
    xattrs = _xattrs(path)
    if xattrs:
        node["xattrs"] = xattrs
    return node


class _Engine:
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
        self.reusable_keys = reusable_keys or set()
        self.digests: dict[str, str] | None = None  # path -> BLAKE3 of the content, when asked
        self.reusable = index.ids_sealed_with(reusable_keys) if reusable_keys is not None else None
        self.lock = threading.Lock()
        self.pending: set[bytes] = set()
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
        )

    @property
    def data_key(self) -> DataKey:
        """This run's data key, made (and sealed to the recipients) when the first blob needs it."""
        with self.lock:
            if self._data_key is None:
                self._data_key = self.repo.new_data_key()
            return self._data_key

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

    def keys_needed(self, refs: set[bytes]) -> set[bytes]:
        """The data keys that open every blob of a snapshot (the copies this run built on)."""
        keys: set[bytes] = set()
        run_key = self._data_key.key_id if self._data_key else None
        for blob_id in refs:
            if blob_id in self.pending and run_key is not None:
                keys.add(run_key)
                continue
            for _, entry in self.index.locations(blob_id):
                if self.reusable is None or entry.key_id in self.reusable_keys:
                    keys.add(entry.key_id)
                    break
        return keys

    def known(self, blob_id: bytes) -> bool:
        """Stored already, under a data key this run may build on."""
        return (
            blob_id in self.reusable if self.reusable is not None else blob_id in self.index.blobs
        )

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
            payload = compress_if_worth(self.thread_state()[1], data)
            self.packer.add(blob_type, blob_id, payload, len(data))
        return blob_id

    def file(self, path: str) -> tuple[list[str], int]:
        """Chunk and store one file; return its blob ids (hex) and the bytes read."""
        fd = _open(path)
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
        reader = _PipeReader(fd)
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
        _fill = fill or _fill_file
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


def _open(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | _O_NOATIME | os.O_NOFOLLOW)
    except PermissionError:
        if not _O_NOATIME:
            raise
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW)  # O_NOATIME needs ownership


_F_SETPIPE_SZ = 1031
_GATHER = 256 * 1024


class _PipeReader:
    """Drains a producer's pipe in its own thread, up to 32 MiB ahead of the chunker.

    A pipe holds 64 KiB: read in step with chunking, the dump tool would stall every time we
    compress a segment, and the two would take turns instead of running side by side.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.queue: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=32)
        self.pending = memoryview(b"")
        self.done = False
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sealbox-pipe", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(self.fd, _F_SETPIPE_SZ, 1 << 20)  # let the producer run further ahead
        waiting = array.array("i", [0])
        try:
            while not self.halt.is_set():
                # Let data gather before reading: a tool writing 4 KiB at a time would otherwise
                # wake us (and cost a context switch) for every write.
                fcntl.ioctl(self.fd, termios.FIONREAD, waiting)
                if waiting[0] < _GATHER:
                    time.sleep(0.002)
                data = os.read(self.fd, 1 << 20)
                self._put(data)
                if not data:
                    return
        except OSError as exc:
            self._put(exc)

    def _put(self, item: bytes | BaseException) -> None:
        while not self.halt.is_set():
            try:
                self.queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def fill(self, fd: int, view: memoryview, start: int) -> int:
        pos = start
        while pos < len(view) and not self.done:
            if not self.pending:
                item = self.queue.get()
                if isinstance(item, BaseException):
                    raise item
                if not item:
                    self.done = True
                    break
                self.pending = memoryview(item)
            take = min(len(self.pending), len(view) - pos)
            view[pos : pos + take] = self.pending[:take]
            self.pending = self.pending[take:]
            pos += take
        return pos

    def stop(self) -> None:
        self.halt.set()
        self.thread.join(timeout=5)


def _fill_file(fd: int, view: memoryview, start: int) -> int:
    """Read until the buffer is full or the file ends; return the filled length."""
    pos = start
    while pos < len(view):
        n = os.readv(fd, [view[pos:]])
        if n == 0:
            break
        pos += n
    return pos


def _excluded(path: str, name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(path, p) for p in patterns)


COMPACT_AFTER = 32  # index files; each run writes one


def _compact_index(repo: Repository, index: Index) -> None:
    """Merge the index files into one once there are many (a run reads them all). Only the
    files this run read are deleted, after the merged one is stored, so a concurrent backup's
    new index file is never lost."""
    if len(index.files) < COMPACT_AFTER or index.damaged:
        return
    merged = repo.save_index(index.packs)
    for name in index.files:
        if name != merged:
            repo.backend.delete(name)
    index.files = [merged]


def _recover_orphans(repo: Repository, index: Index) -> dict[str, list[fmt.PackEntry]]:
    """Packs uploaded by an interrupted run (no index names them): index them to reuse their blobs."""
    recovered = {}
    for name, size in repo.list_packs():
        if name not in index.packs:
            try:
                entries = repo.read_pack_header(name, size)
            except SealboxError:
                continue  # a partial or foreign object: left for `check` and prune to report
            index.add_pack(name, entries)
            recovered[name] = entries
    return recovered


def run_backup(
    repo: Repository,
    paths: list[Path],
    *,
    state_dir: Path,
    excludes: list[str] | None = None,
    tags: list[str] | None = None,
    kind: str = "files",
    hostname: str | None = None,
    extra: dict[str, Any] | None = None,
    progress: Progress | None = None,
    streams: list[Stream] | None = None,
    level: int = 1,
    reusable_keys: set[bytes] | None = None,
    only_files: list[Path] | None = None,
) -> BackupResult:
    """Back up ``paths`` (or, with ``only_files``, just those files) into a new snapshot. With
    ``only_files``, ``result.digests`` maps each file to the BLAKE3 of its content."""
    started = time.perf_counter()
    progress = progress or Progress()
    excludes = excludes or []
    roots = []
    for path in paths:
        absolute = Path(os.path.abspath(path))
        if not os.path.lexists(absolute):
            raise NotFoundError(f"{path}: no such file or directory")
        roots.append(absolute)
    with Lock(repo.backend, exclusive=False, purpose="backup"):
        index = repo.load_index()
        _compact_index(repo, index)
        recovered = _recover_orphans(repo, index)
        engine = _Engine(repo, index, progress, level, reusable_keys)
        # One cache per set of paths, so alternating backups of different trees keep theirs.
        key = hashlib.sha256("\0".join(sorted(map(str, roots))).encode()).hexdigest()[:16]
        cache = FilesCache(state_dir / "repos" / repo.config.id / f"files-{kind}-{key}.json").load()
        result = BackupResult(snapshot=None)  # type: ignore[arg-type]
        walker = _Walker(engine, cache, excludes, result)
        with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="sealbox-backup") as pool:
            walker.pool = pool
            stream_jobs = walker.add_streams(
                root_node := {"type": "dir", "children": {}}, streams or []
            )
            if only_files is None:
                walker.build_root(roots, root_node)
            else:
                engine.digests = {}
                walker.build_files([Path(os.path.abspath(f)) for f in only_files], root_node)
            walker.wait()
            for node, future in stream_jobs:
                node["content"], node["size"] = future.result()
        tree_id, size, files, dirs = walker.finish_tree(root_node)
        engine.flush()
        packs: dict[str, list[fmt.PackEntry]] = dict(recovered)
        for flushed in engine.packer.flushed:
            packs[flushed.name] = flushed.entries
            result.packs += 1
            result.bytes_added += sum(e.length for e in flushed.entries)
        if packs:
            repo.save_index(packs)
        refs_name = repo.save_refs(walker.refs)
        snapshot = Snapshot(
            id="",
            time=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            hostname=hostname or socket.gethostname(),
            paths=[str(r) for r in roots],
            tree=tree_id,
            refs=refs_name,
            kind=kind,
            tags=list(tags or []),
            size=size,
            files=files,
            dirs=dirs,
            data_keys=sorted(k.hex() for k in engine.keys_needed(walker.refs)),
            extra=dict(extra or {}),
        )
        if result.warnings:
            snapshot.extra["warnings"] = len(result.warnings)
        repo.save_snapshot(snapshot)
        cache.save()
    result.snapshot = snapshot
    result.digests = engine.digests or {}
    result.blobs_added = engine.blobs_added
    result.recovered_packs = len(recovered)
    result.seconds = time.perf_counter() - started
    return result


class _Walker:
    """Builds the directory structure on the main thread; file contents come from the workers."""

    def __init__(
        self, engine: _Engine, cache: FilesCache, excludes: list[str], result: BackupResult
    ) -> None:
        self.engine, self.cache, self.excludes, self.result = engine, cache, excludes, result
        self.pool: ThreadPoolExecutor | None = None
        # Small files go to the workers in batches: one future per file costs more than reading it.
        self.jobs: list[
            tuple[list[tuple[dict[str, Any], str, os.stat_result]], Future[list[Any]]]
        ] = []
        self.batch: list[tuple[dict[str, Any], str, os.stat_result]] = []
        self.batch_bytes = 0
        self.refs: set[bytes] = set()

    def submit(self, node: dict[str, Any], path: str, st: os.stat_result) -> None:
        self.batch.append((node, path, st))
        self.batch_bytes += st.st_size
        if len(self.batch) >= BATCH_FILES or self.batch_bytes >= BATCH_BYTES:
            self.flush_batch()

    def flush_batch(self) -> None:
        if self.batch:
            assert self.pool is not None
            batch, self.batch, self.batch_bytes = self.batch, [], 0
            self.jobs.append((batch, self.pool.submit(self.engine.files, [p for _, p, _ in batch])))

    def warn(self, message: str) -> None:
        self.result.warnings.append(message)

    def add_streams(
        self, root: dict[str, Any], streams: list[Stream]
    ) -> list[tuple[dict[str, Any], Future[Any]]]:
        """Start the producers (first: a dump is usually the longest job) under ``.sealbox/``."""
        if not streams:
            return []
        assert self.pool is not None
        now = time.time_ns()
        children: dict[str, Any] = {}
        holder: dict[str, Any] = {
            "type": "dir",
            "mode": 0o700,
            "uid": 0,
            "gid": 0,
            "mtime_ns": now,
            "children": children,
        }
        set_node_name(holder, STREAM_DIR)
        root["children"][STREAM_DIR] = holder
        jobs = []
        for stream in streams:
            node: dict[str, Any] = {
                "type": "file",
                "mode": 0o600,
                "uid": 0,
                "gid": 0,
                "mtime_ns": now,
            }
            set_node_name(node, stream.name)
            children[stream.name] = node
            jobs.append((node, self.pool.submit(self.engine.stream, stream)))
        return jobs

    def build_files(self, files: list[Path], root: dict[str, Any]) -> None:
        """Only the given files, each under its full parent chain (the recordings' batches)."""
        for path in files:
            parent = root
            for depth in range(1, len(path.parts) - 1):
                name = path.parts[depth]
                if name not in parent["children"]:
                    ancestor = Path(*path.parts[: depth + 1])
                    node = _node(name, os.lstat(ancestor), str(ancestor))
                    node["children"] = {}
                    parent["children"][name] = node
                parent = parent["children"][name]
            leaf = self.scan(path.name, str(path))
            if leaf is not None:
                parent["children"][path.name] = leaf

    def build_root(self, roots: list[Path], root: dict[str, Any]) -> dict[str, Any]:
        """Each path under its full parent chain in the synthetic root directory."""
        for path in roots:
            parent = root
            for depth in range(1, len(path.parts) - 1):
                ancestor = Path(*path.parts[: depth + 1])
                name = path.parts[depth]
                if name not in parent["children"]:
                    ancestor_node = _node(name, os.lstat(ancestor), str(ancestor))
                    ancestor_node["children"] = {}
                    parent["children"][name] = ancestor_node
                parent = parent["children"][name]
            node = self.scan(path.name, str(path))
            if node is not None:
                parent["children"][path.name or "/"] = node
        return root

    def scan(self, name: str, path: str) -> dict[str, Any] | None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            self.warn(f"{path}: vanished during the backup")
            return None
        except OSError as exc:
            self.warn(f"{path}: {exc.strerror}")
            return None
        node = _node(name, st, path)
        if stat.S_ISDIR(st.st_mode):
            node["children"] = {}
            try:
                entries = sorted(os.scandir(path), key=lambda e: e.name)
            except OSError as exc:
                self.warn(f"{path}: cannot list: {exc.strerror}")
                entries = []
            for entry in entries:
                child = entry.path
                if self.excludes and _excluded(child, entry.name, self.excludes):
                    continue
                sub = self.scan(entry.name, child)
                if sub is not None:
                    node["children"][entry.name] = sub
        elif stat.S_ISREG(st.st_mode):
            self.engine.progress.total_files += 1
            self.engine.progress.total_bytes += st.st_size
            # With only_files (recordings) every file is read: its digest goes into the manifest.
            cached = self.cache.lookup(path, st) if self.engine.digests is None else None
            if cached is not None and all(self.engine.known(bytes.fromhex(i)) for i in cached):
                node["content"], node["size"] = cached, st.st_size
                self.cache.remember(path, st, cached)
                self.result.files_unchanged += 1
                self.engine.progress.add(files=1, nbytes=st.st_size)
            else:
                assert self.pool is not None
                self.submit(node, path, st)
        elif stat.S_ISLNK(st.st_mode):
            try:
                node["target"] = os.readlink(path)
            except OSError as exc:
                self.warn(f"{path}: cannot read link: {exc.strerror}")
                return None
        return node

    def wait(self) -> None:
        self.flush_batch()
        for batch, future in self.jobs:
            for (node, path, st), outcome in zip(batch, future.result(), strict=True):
                if isinstance(outcome, FileNotFoundError):
                    self.warn(f"{path}: vanished during the backup")
                    node["drop"] = True
                    continue
                if isinstance(outcome, OSError):
                    self.warn(f"{path}: cannot read: {outcome.strerror}")
                    node["drop"] = True
                    continue
                self.record(node, path, st, outcome)

    def record(
        self, node: dict[str, Any], path: str, st: os.stat_result, outcome: tuple[list[str], int]
    ) -> None:
        ids, read = outcome
        node["content"], node["size"] = ids, read
        if self.engine.digests is not None:
            self.result.contents[path] = ids
        self.cache.remember(path, st, ids)
        self.result.files_new += 1
        self.result.bytes_read += read

    def finish_tree(self, node: dict[str, Any]) -> tuple[str, int, int, int]:
        """Store the tree blobs bottom-up; return (root id, bytes, files, dirs)."""
        size = files = dirs = 0
        nodes = []
        for child in node["children"].values():
            if child.pop("drop", False):
                continue
            if "children" in child:
                subtree, s, f, d = self.finish_tree(child)
                del child["children"]
                child["subtree"] = subtree
                size, files, dirs = size + s, files + f, dirs + d + 1
            elif child["type"] == "file":
                size += child.get("size", 0)
                files += 1
                self.refs.update(bytes.fromhex(i) for i in child.get("content", ()))
            nodes.append(child)
        blob_id = self.engine.store(fmt.BLOB_TREE, encode_tree(nodes))
        self.refs.add(blob_id)
        return blob_id.hex(), size, files, dirs
