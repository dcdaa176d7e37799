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

import contextlib
import hashlib
import os
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sealbox.backends.base import append_only
from sealbox.errors import NotFoundError, SealboxError
from sealbox.repo import format as fmt
from sealbox.repo.engine import WORKERS, Engine, Progress
from sealbox.repo.filescache import FilesCache
from sealbox.repo.inputs import STREAM_DIR, Stream, bytes_stream
from sealbox.repo.locks import Lock
from sealbox.repo.repository import Index, Repository, Snapshot
from sealbox.repo.walker import Walker

__all__ = ["STREAM_DIR", "BackupResult", "Progress", "Stream", "bytes_stream", "run_backup"]


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


COMPACT_AFTER = 32  # index files; each run writes one


def _compact_index(repo: Repository, index: Index) -> None:
    """Merge the index files into one once there are many (a run reads them all). Only the
    files this run read are deleted, after the merged one is stored, so a concurrent backup's
    new index file is never lost."""
    parts = -(-index.count // fmt.INDEX_PART)  # the fewest files that can hold it
    if len(index.files) < parts + COMPACT_AFTER or index.damaged or append_only(repo.backend):
        return
    merged = repo.save_index(index.packs)
    for name in index.files:
        if name not in merged:
            repo.backend.delete(name)
    index.files = merged


def _recover_orphans(repo: Repository, index: Index) -> list[str]:
    """Packs uploaded by an interrupted run (no index names them): index them to reuse their
    blobs; their names."""
    recovered = []
    for name, size in repo.list_packs():
        if name not in index.packs:
            try:
                entries = repo.read_pack_header(name, size)
            except SealboxError:
                continue  # a partial or foreign object: left for `check` and prune to report
            index.add_pack(name, entries)
            recovered.append(name)
    return recovered


def _drop_json_cache(path: Path) -> None:
    """The files cache of earlier versions (one JSON document of every file): replaced."""
    with contextlib.suppress(OSError):
        path.unlink()


def _walk(
    engine: Engine,
    cache: FilesCache,
    excludes: list[str],
    roots: list[Path],
    streams: list[Stream],
    only_files: list[Path] | None,
) -> tuple[BackupResult, str, int, int, int, Walker]:
    """Walk, read and store everything; the root tree and the totals."""
    result = BackupResult(snapshot=None)  # type: ignore[arg-type]
    walker = Walker(engine, cache, excludes, result)
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="sealbox-backup") as pool:
        walker.pool = pool
        stream_jobs = walker.add_streams(root_node := {"type": "dir", "children": {}}, streams)
        if only_files is None:
            walker.build_root(roots, root_node)
        else:
            engine.digests = {}
            walker.build_files([Path(os.path.abspath(f)) for f in only_files], root_node)
        walker.finish()
        for node, future in stream_jobs:
            node["content"], node["size"] = future.result()
    tree_id, size, files, dirs = walker.finish_tree(root_node)
    return result, tree_id, size, files, dirs, walker


def _publish(
    repo: Repository,
    engine: Engine,
    cache: FilesCache,
    excludes: list[str],
    roots: list[Path],
    streams: list[Stream],
    only_files: list[Path] | None,
    recovered: list[str],
    snapshot: Snapshot,
    before_publish: Callable[[], None] | None = None,
) -> tuple[BackupResult, Snapshot]:
    """The run after the lock is taken: walk, then packs, index, reference list, snapshot."""
    result, tree_id, size, files, dirs, walker = _walk(
        engine, cache, excludes, roots, streams, only_files
    )
    engine.flush()
    for flushed in engine.packer.flushed:
        result.packs += 1
        result.bytes_added += flushed.stored
    if recovered or engine.new_packs:
        repo.save_index(engine.index.subset([*recovered, *engine.new_packs]))
    snapshot.time = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    snapshot.tree, snapshot.refs = tree_id, repo.save_refs(walker.refs)
    snapshot.size, snapshot.files, snapshot.dirs = size, files, dirs
    snapshot.data_keys = sorted(k.hex() for k in engine.keys_needed(walker.refs))
    if result.warnings:
        snapshot.extra["warnings"] = len(result.warnings)
    if before_publish is not None:
        before_publish()  # e.g. a cluster's fence: raising here publishes no snapshot
    repo.save_snapshot(snapshot)
    return result, snapshot


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
    before_publish: Callable[[], None] | None = None,
) -> BackupResult:
    """Back up ``paths`` (or, with ``only_files``, just those files) into a new snapshot. With
    ``only_files``, ``result.digests`` maps each file to the BLAKE3 of its content.
    ``before_publish`` is called once everything but the snapshot is stored; if it raises, no
    snapshot is written (the stored data stays unreferenced until prune)."""
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
        engine = Engine(repo, index, progress, level, reusable_keys)
        # One cache per set of paths, so alternating backups of different trees keep theirs.
        key = hashlib.sha256("\0".join(sorted(map(str, roots))).encode()).hexdigest()[:16]
        cache_dir = state_dir / "repos" / repo.config.id
        _drop_json_cache(cache_dir / f"files-{kind}-{key}.json")
        cache = FilesCache(cache_dir / f"files-{kind}-{key}.cache").load()
        try:
            result, snapshot = _publish(
                repo, engine, cache, excludes, roots, streams or [], only_files, recovered,
                Snapshot(
                    id="",
                    time="",
                    hostname=hostname or socket.gethostname(),
                    paths=[str(r) for r in roots],
                    tree="",
                    refs="",
                    kind=kind,
                    tags=list(tags or []),
                    extra=dict(extra or {}),
                ),
                before_publish,
            )  # fmt: skip
        except BaseException:
            cache.abandon()  # the last run's cache stays
            raise
        cache.save()
    result.snapshot = snapshot
    result.digests = engine.digests or {}
    result.blobs_added = engine.blobs_added
    result.recovered_packs = len(recovered)
    result.seconds = time.perf_counter() - started
    return result
