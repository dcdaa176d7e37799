"""The walker: walks the paths on the main thread, hands file contents to the engine's workers,
and stores each directory's tree as soon as its files are in (bottom-up, streamed)."""

from __future__ import annotations

import fnmatch
import grp
import os
import pwd
import stat
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import blake3

from sealbox.repo import format as fmt
from sealbox.repo.engine import BATCH_BYTES, BATCH_FILES, WORKERS, Engine
from sealbox.repo.filescache import FilesCache, walk_order
from sealbox.repo.filescache import Record as FilesRecord
from sealbox.repo.index import IdSet
from sealbox.repo.inputs import STREAM_DIR, Stream
from sealbox.repo.tree import encode_tree, kind_of, set_node_name

__all__ = ["Tally", "Walker"]


class Tally(Protocol):
    """What the walker counts into (a run's ``BackupResult``)."""

    files_new: int
    files_unchanged: int
    bytes_read: int
    warnings: list[str]
    contents: dict[str, list[str]]


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


def _excluded(path: str, name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(path, p) for p in patterns)


MAX_JOBS = 2 * WORKERS  # batches handed to the workers and not yet taken back
MAX_WAITING_NODES = 16384  # nodes of finished walks held for their files' results
TREE_BATCH = 64  # trees handed to a worker at once


class _Dir:
    """A directory the walker has listed: its children's nodes until its tree is stored."""

    __slots__ = ("files", "needs", "node", "nodes", "path")

    def __init__(self, node: dict[str, Any], path: str) -> None:
        self.node, self.path = node, path
        self.nodes: list[dict[str, Any]] = []
        self.files: list[tuple[str, os.stat_result, dict[str, Any]]] = []  # for the files cache
        self.needs = -1  # the last batch of file reads its nodes wait for


class Walker:
    """Walks on the main thread; file contents come from the workers; trees are stored bottom-up
    as soon as a directory's files are in, so memory holds the directories in flight (the path
    being walked and those waiting for their files), never the whole tree.

    Directories are finished in the order the walk leaves them (everything below a directory
    before it; names sorted by their bytes), which is also the files cache's order.
    """

    def __init__(
        self, engine: Engine, cache: FilesCache, excludes: list[str], result: Tally
    ) -> None:
        self.engine, self.cache, self.excludes, self.result = engine, cache, excludes, result
        self.pool: ThreadPoolExecutor | None = None
        # Small files go to the workers in batches: one future per file costs more than reading it.
        self.jobs: deque[
            tuple[list[tuple[dict[str, Any], str, os.stat_result]], Future[list[Any]]]
        ] = deque()
        self.submitted = 0  # batches handed to the workers
        self.taken = 0  # batches whose results are in (oldest first)
        self.batch: list[tuple[dict[str, Any], str, os.stat_result]] = []
        self.batch_bytes = 0
        self.waiting: deque[_Dir] = deque()
        self.waiting_nodes = 0
        self.refs = IdSet()
        self.size = self.files = self.dirs = 0  # the snapshot's totals
        self.trees: list[tuple[bytes, bytes]] = []  # claimed trees not yet handed to the workers
        self.trees_bytes = 0
        self.tree_jobs: deque[Future[None]] = deque()

    # -- file contents, in batches -----------------------------------------------------------------
    def submit(self, node: dict[str, Any], path: str, st: os.stat_result) -> int:
        """Queue a file for the workers; the number of the batch it lands in."""
        self.batch.append((node, path, st))
        self.batch_bytes += st.st_size
        job = self.submitted
        if len(self.batch) >= BATCH_FILES or self.batch_bytes >= BATCH_BYTES:
            self.flush_batch()
        return job

    def flush_batch(self) -> None:
        if self.batch:
            assert self.pool is not None
            batch, self.batch, self.batch_bytes = self.batch, [], 0
            future = self.pool.submit(self.engine.files, [p for _, p, _ in batch])
            self.jobs.append((batch, future))
            self.submitted += 1

    def take(self) -> None:
        """The results of the oldest batch (waiting for it)."""
        batch, future = self.jobs.popleft()
        for (node, path, _), outcome in zip(batch, future.result(), strict=True):
            if isinstance(outcome, FileNotFoundError):
                self.warn(f"{path}: vanished during the backup")
                node["drop"] = True
            elif isinstance(outcome, OSError):
                self.warn(f"{path}: cannot read: {outcome.strerror}")
                node["drop"] = True
            else:
                self.record(node, path, outcome)
        self.taken += 1

    def record(self, node: dict[str, Any], path: str, outcome: tuple[list[str], int]) -> None:
        ids, read = outcome
        node["content"], node["size"] = ids, read
        if self.engine.digests is not None:
            self.result.contents[path] = ids
        self.result.files_new += 1
        self.result.bytes_read += read

    def settle(self, force: bool = False) -> None:
        """Store the trees of the directories whose files are all in. Waits for the workers when
        too much is in flight (or, with ``force``, until every listed directory is stored)."""
        while len(self.jobs) > MAX_JOBS:
            self.take()
        while self.jobs and self.jobs[0][1].done():
            self.take()
        while self.waiting:
            d = self.waiting[0]
            if d.needs >= self.taken:
                if not force and self.waiting_nodes <= MAX_WAITING_NODES:
                    return
                if d.needs >= self.submitted:
                    self.flush_batch()
                self.take()
                continue
            self.waiting.popleft()
            self.waiting_nodes -= len(d.nodes)
            self.finish_dir(d)

    def finish(self) -> None:
        """Every directory stored, every file read."""
        self.settle(force=True)
        self.flush_batch()
        while self.jobs:
            self.take()
        self.flush_trees()
        while self.tree_jobs:
            self.tree_jobs.popleft().result()

    def warn(self, message: str) -> None:
        self.result.warnings.append(message)

    # -- the walk ---------------------------------------------------------------------------------
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

    def _ancestors(self, path: Path, root: dict[str, Any]) -> dict[str, Any]:
        """The node of ``path``'s parent in the synthetic root, made along its chain."""
        parent = root
        for depth in range(1, len(path.parts) - 1):
            name = path.parts[depth]
            if name not in parent["children"]:
                ancestor = Path(*path.parts[: depth + 1])
                node = _node(name, os.lstat(ancestor), str(ancestor))
                node["children"] = {}
                parent["children"][name] = node
            parent = parent["children"][name]
        return parent

    def build_files(self, files: list[Path], root: dict[str, Any]) -> None:
        """Only the given files, each under its full parent chain (the recordings' batches)."""
        for path in files:
            parent = self._ancestors(path, root)
            leaf = self.scan(path.name, str(path))
            if leaf is not None:
                parent["children"][path.name] = leaf

    def build_root(self, roots: list[Path], root: dict[str, Any]) -> dict[str, Any]:
        """Each path under its full parent chain in the synthetic root directory. A path inside
        another one is already covered by it; the others are walked in the cache's order."""
        given = {os.fsencode(str(r)) for r in roots}
        for path in sorted(roots, key=lambda r: walk_order(os.fsencode(str(r)))):
            raw = os.fsencode(str(path))
            if any(raw.startswith(other.rstrip(b"/") + b"/") for other in given if other != raw):
                continue
            parent = self._ancestors(path, root)
            node = self.scan(path.name, str(path))
            if node is not None:
                parent["children"][path.name or "/"] = node
        return root

    def scan(
        self,
        name: str,
        path: str,
        d: _Dir | None = None,
        cached: FilesRecord | None = None,
    ) -> dict[str, Any] | None:
        """The node of ``path``: a directory is walked and its tree stored (or queued); a file
        unchanged since the last run (``cached``: its directory's cache record) is not read."""
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
            self.walk_dir(node, path)
        elif stat.S_ISREG(st.st_mode):
            self.engine.progress.total_files += 1
            self.engine.progress.total_bytes += st.st_size
            ids = FilesCache.lookup(cached, name, st) if cached else None
            if ids is not None and all(self.engine.known(i) for i in ids):
                node["content"], node["size"] = [i.hex() for i in ids], st.st_size
                self.result.files_unchanged += 1
                self.engine.progress.add(files=1, nbytes=st.st_size)
            else:
                job = self.submit(node, path, st)
                if d is not None:
                    d.needs = job
            if d is not None:
                d.files.append((name, st, node))
        elif stat.S_ISLNK(st.st_mode):
            try:
                node["target"] = os.readlink(path)
            except OSError as exc:
                self.warn(f"{path}: cannot read link: {exc.strerror}")
                return None
        return node

    def walk_dir(self, node: dict[str, Any], path: str) -> None:
        """Subdirectories first, then the files (so the files cache is read in finishing order);
        then the directory waits for its files' results."""
        d = _Dir(node, path)
        try:
            entries = sorted(os.scandir(path), key=lambda e: os.fsencode(e.name))
        except OSError as exc:
            self.warn(f"{path}: cannot list: {exc.strerror}")
            entries = []
        rest = []
        for entry in entries:
            if self.excludes and _excluded(entry.path, entry.name, self.excludes):
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:  # d too: should it be a file by the time it is looked at, d counts it
                sub = self.scan(entry.name, entry.path, d)
                if sub is not None:
                    d.nodes.append(sub)
            else:
                rest.append(entry)
        # With digests (recordings) every file is read: its digest goes into the manifest.
        record = self.cache.directory(path) if rest and self.engine.digests is None else {}
        for entry in rest:
            sub = self.scan(entry.name, entry.path, d, record)
            if sub is not None:
                d.nodes.append(sub)
        self.waiting.append(d)
        self.waiting_nodes += len(d.nodes)
        self.settle()

    # -- trees ------------------------------------------------------------------------------------
    def _count(self, node: dict[str, Any]) -> None:
        if node["type"] == "file":
            self.size += node.get("size", 0)
            self.files += 1
            for blob in node.get("content", ()):
                self.refs.add(bytes.fromhex(blob))
        elif node["type"] == "dir":
            self.dirs += 1

    def _store_tree(self, nodes: list[dict[str, Any]]) -> str:
        """The tree's id now; compressing and packing it is left to the workers, in batches
        (the walk is what keeps two cores busy: the main thread does as little as it can)."""
        data = encode_tree(nodes)
        blob_id = blake3.blake3(data, key=self.engine.id_key).digest()
        if self.engine.claim(blob_id):
            if self.pool is None:  # after the walk (the synthetic trees): here and now
                self.engine.put(fmt.BLOB_TREE, blob_id, data)
            else:
                self.trees.append((blob_id, data))
                self.trees_bytes += len(data)
                if len(self.trees) >= TREE_BATCH or self.trees_bytes >= BATCH_BYTES:
                    self.flush_trees()
        self.refs.add(blob_id)
        return blob_id.hex()

    def flush_trees(self) -> None:
        if self.trees:
            assert self.pool is not None
            trees, self.trees, self.trees_bytes = self.trees, [], 0
            self.tree_jobs.append(self.pool.submit(self.engine.put_many, fmt.BLOB_TREE, trees))
            while self.tree_jobs and self.tree_jobs[0].done():
                self.tree_jobs.popleft().result()  # raises what the worker met

    def finish_dir(self, d: _Dir) -> None:
        """Store a walked directory's tree (its files are all in) and its files cache record."""
        nodes = []
        for child in d.nodes:
            if child.pop("drop", False):
                continue
            if child["type"] == "dir":
                self.dirs += 1
            nodes.append(child)
        records = []
        add_ref = self.refs.add
        for name, st, node in d.files:  # every regular file of d.nodes, in the same order
            content = node.get("content")
            if content is None:  # dropped: vanished or unreadable
                continue
            ids = [bytes.fromhex(i) for i in content]
            for blob_id in ids:
                add_ref(blob_id)
            self.size += node["size"]
            self.files += 1
            records.append((name, st, ids))
        self.cache.remember(d.path, records)
        d.node["subtree"] = self._store_tree(nodes)

    def finish_tree(self, node: dict[str, Any]) -> tuple[str, int, int, int]:
        """Store the synthetic trees (the roots' parent chains, ``.sealbox/``) bottom-up, after
        :meth:`finish`; return (root id, bytes, files, dirs) of the whole snapshot."""
        assert not self.trees and not self.tree_jobs, "finish() first"
        self.pool = None  # shut down by now
        self._finish_synthetic(node)
        return node.pop("subtree"), self.size, self.files, self.dirs

    def _finish_synthetic(self, node: dict[str, Any]) -> None:
        nodes = []
        for child in node.pop("children").values():
            if child.pop("drop", False):
                continue
            if "children" in child:
                self._finish_synthetic(child)
            self._count(child)
            nodes.append(child)
        node["subtree"] = self._store_tree(nodes)
