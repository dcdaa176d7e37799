"""The walker: builds the snapshot's directory structure on the main thread and hands file
contents to the engine's workers; then stores the trees bottom-up."""

from __future__ import annotations

import fnmatch
import grp
import os
import pwd
import stat
import time
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from sealbox.repo import format as fmt
from sealbox.repo.engine import BATCH_BYTES, BATCH_FILES, Engine
from sealbox.repo.filescache import FilesCache
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


class Walker:
    """Builds the directory structure on the main thread; file contents come from the workers."""

    def __init__(
        self, engine: Engine, cache: FilesCache, excludes: list[str], result: Tally
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
