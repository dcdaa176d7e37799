"""Restore a snapshot (or the parts matching globs) into a target directory, safely.

- Every name from a tree is validated (:func:`sealbox.repo.tree.node_name`) and every path is
  built under the target by us; files are opened with ``O_NOFOLLOW`` and each parent directory's
  real path must stay inside the target, so absolute names, ``..`` and symlink tricks cannot write
  outside it.
- Free space is checked before anything is written, with the numbers in the error.
- Every chunk is authenticated and checked against its keyed id on the way in; after a file is
  written it is read back and compared, so what is on disk is what was backed up.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fnmatch
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import blake3

from sealbox.errors import CorruptFileError, OutputError, PolicyError
from sealbox.repo.blobs import BlobReader
from sealbox.repo.repository import Index, Repository, Snapshot
from sealbox.repo.tree import decode_tree, node_name

__all__ = ["RestorePlan", "RestoreResult", "plan_restore", "run_restore"]

WORKERS = int(os.environ.get("SEALBOX_RESTORE_WORKERS", "0")) or 3
LARGE_FILE = 4 * 1024 * 1024
BATCH_FILES = 512


@dataclass
class Entry:
    path: str  # relative to the target, "/"-separated
    node: dict[str, Any]


@dataclass
class RestorePlan:
    snapshot: Snapshot
    entries: list[Entry]
    files: int
    bytes: int
    free: int
    damaged_trees: list[str] = field(default_factory=list)


@dataclass
class RestoreResult:
    files: int = 0
    bytes: int = 0
    dirs: int = 0
    links: int = 0
    failed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _matches(path: str, patterns: list[str]) -> bool:
    absolute = "/" + path
    return any(
        fnmatch.fnmatch(path, p)
        or fnmatch.fnmatch(absolute, p)
        or absolute.startswith(p.rstrip("/") + "/")
        or absolute == p.rstrip("/")
        for p in patterns
    )


def _walk(reader: BlobReader, tree_id: str, prefix: str, damaged: list[str]) -> Iterator[Entry]:
    try:
        nodes = decode_tree(reader.read(bytes.fromhex(tree_id)), prefix or "/")
    except CorruptFileError as exc:
        damaged.append(f"{prefix or '/'}: {exc}")
        return
    for node in nodes:
        path = f"{prefix}/{node_name(node)}" if prefix else node_name(node)
        yield Entry(path, node)
        if node.get("type") == "dir" and node.get("subtree"):
            yield from _walk(reader, node["subtree"], path, damaged)


def _free_space(target: Path) -> int:
    probe = target
    while not probe.exists():
        probe = probe.parent
    usage = shutil.disk_usage(probe)
    return usage.free


def plan_restore(
    repo: Repository,
    index: Index,
    reader: BlobReader,
    snapshot: Snapshot,
    target: Path,
    includes: list[str] | None = None,
) -> RestorePlan:
    damaged: list[str] = []
    entries = list(_walk(reader, snapshot.tree, "", damaged))
    if includes:
        wanted = [e for e in entries if _matches(e.path, includes)]
        keep = {e.path for e in wanted}
        for e in wanted:  # the directories leading to each match
            parts = e.path.split("/")
            keep.update("/".join(parts[:i]) for i in range(1, len(parts)))
        entries = [e for e in entries if e.path in keep]
    files = [e for e in entries if e.node.get("type") == "file"]
    return RestorePlan(
        snapshot,
        entries,
        len(files),
        sum(int(e.node.get("size", 0)) for e in files),
        _free_space(target),
        damaged,
    )


def _inside(target_real: str, path: str) -> None:
    """Refuse ``path`` unless its directory's real path lies inside the target."""
    real = os.path.realpath(os.path.dirname(path))
    if real != target_real and not real.startswith(target_real + os.sep):
        raise PolicyError(f"refusing to write {path}: its directory leads outside the target")


class _Writer:
    def __init__(
        self,
        reader: BlobReader,
        target: Path,
        result: RestoreResult,
        verify: bool,
        on_bytes: Callable[[int], None] | None,
    ) -> None:
        self.reader, self.target, self.result, self.verify = reader, target, result, verify
        self.target_real = os.path.realpath(target)
        self.on_bytes = on_bytes
        self.hardlinks: dict[tuple[int, int], str] = {}
        self.is_root = os.geteuid() == 0

    def path(self, entry: Entry) -> str:
        return os.path.join(self.target, *entry.path.split("/"))

    def files(self, batch: list[Entry]) -> list[str]:
        """Write a batch of files; return the ones that failed an integrity check."""
        failed = []
        for entry in batch:
            try:
                self.file(entry)
            except CorruptFileError as exc:
                failed.append(f"{entry.path}: {exc}")
            except OSError as exc:  # a full disk, a read-only target: stop with the reason
                raise OutputError(f"cannot write {self.path(entry)}: {exc.strerror}") from exc
        return failed

    def file(self, entry: Entry) -> None:
        # The parent was created (and checked to lie inside the target) before any file; O_NOFOLLOW
        # refuses a symlink in place of the file itself, which is then replaced, never followed.
        path = self.path(entry)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        try:
            fd = os.open(path, flags, 0o600)
        except (FileExistsError, OSError) as exc:
            if isinstance(exc, FileExistsError) or exc.errno == errno.ELOOP:
                os.unlink(path)
                fd = os.open(path, flags, 0o600)
            else:
                raise
        digest = blake3.blake3()
        try:
            for blob_hex in entry.node.get("content", ()):
                data = self.reader.read(bytes.fromhex(blob_hex))
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                digest.update(data)
                if self.on_bytes:
                    self.on_bytes(len(data))
            _metadata(fd, entry.node, self.is_root, self.result, path)
        finally:
            os.close(fd)
        if self.verify:
            check = blake3.blake3()
            with open(path, "rb", buffering=0) as handle:
                while chunk := handle.read(4 << 20):
                    check.update(chunk)
            if check.digest() != digest.digest():
                raise OutputError(
                    f"{path}: what was written does not read back the same (disk error?)"
                )
        self.result.bytes += int(entry.node.get("size", 0))
        self.result.files += 1


def _metadata(
    target: str | int, node: dict[str, Any], is_root: bool, result: RestoreResult, shown: str
) -> None:
    """Owner, mode, extended attributes and times of a path (or of an open file descriptor)."""
    kind = node.get("type")
    by_fd = isinstance(target, int)
    follow = {} if by_fd else {"follow_symlinks": False}
    try:
        if is_root:
            os.chown(target, int(node.get("uid", 0)), int(node.get("gid", 0)), **follow)
        if kind != "symlink":
            os.chmod(target, int(node.get("mode", 0o644)))
        for name, value in (node.get("xattrs") or {}).items():
            with contextlib.suppress(OSError):
                os.setxattr(target, name, base64.b64decode(value), **follow)
        mtime = int(node.get("mtime_ns", 0))
        if by_fd:
            os.utime(target, ns=(mtime, mtime))
        else:
            os.utime(target, ns=(mtime, mtime), follow_symlinks=False)
    except OSError as exc:
        result.warnings.append(f"{shown}: metadata not restored ({exc.strerror})")


def _batches(files: list[Entry]) -> list[list[Entry]]:
    """Small files grouped by directory (threads creating files in one directory contend for its
    lock in the kernel), large files alone (their chunks decode in parallel)."""
    batches: list[list[Entry]] = []
    by_dir: dict[str, list[Entry]] = {}
    for entry in files:
        if int(entry.node.get("size", 0)) >= LARGE_FILE:
            batches.append([entry])
            continue
        group = by_dir.setdefault(entry.path.rpartition("/")[0], [])
        group.append(entry)
        if len(group) >= BATCH_FILES:
            batches.append(by_dir.pop(entry.path.rpartition("/")[0]))
    batches.extend(by_dir.values())
    return batches


def run_restore(
    repo: Repository,
    index: Index,
    reader: BlobReader,
    plan: RestorePlan,
    target: Path,
    *,
    verify: bool = True,
    on_bytes: Callable[[int], None] | None = None,
) -> RestoreResult:
    started = time.perf_counter()
    if plan.bytes > plan.free:
        raise OutputError(
            f"not enough space in {target}: the restore needs {plan.bytes:,} bytes, {plan.free:,} are free"
        )
    result = RestoreResult(warnings=list(plan.damaged_trees))
    target.mkdir(parents=True, exist_ok=True)
    writer = _Writer(reader, target, result, verify, on_bytes)
    is_root = os.geteuid() == 0
    files = []
    for entry in plan.entries:
        path = writer.path(entry)
        kind = entry.node.get("type")
        if kind == "dir":
            os.makedirs(path, mode=0o700, exist_ok=True)
            # The directory itself must resolve inside the target (a symlink planted in its place
            # would send every file below it elsewhere); files then rely on their checked parent.
            _inside(writer.target_real, os.path.join(path, "."))
            result.dirs += 1
        elif kind == "file":
            key = (entry.node.get("device"), entry.node.get("inode"))
            if entry.node.get("links") and key in writer.hardlinks:
                continue  # linked after the first copy is written
            if entry.node.get("links"):
                writer.hardlinks[key] = path  # type: ignore[index]
            files.append(entry)
        else:
            _inside(writer.target_real, path)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            if kind == "symlink":
                os.symlink(str(entry.node.get("target", "")), path)
            elif kind == "fifo":
                os.mkfifo(path, int(entry.node.get("mode", 0o600)))
            elif kind in ("chardev", "blockdev") and is_root:
                flag = stat.S_IFCHR if kind == "chardev" else stat.S_IFBLK
                os.mknod(
                    path, flag | int(entry.node.get("mode", 0o600)), int(entry.node.get("rdev", 0))
                )
            else:
                result.warnings.append(f"{path}: {kind} not restored")
                continue
            result.links += 1
    # Network destinations: more workers keep more pack downloads (round trips) in flight.
    workers = WORKERS + 2 if getattr(repo.backend, "round_trips", False) else WORKERS
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sealbox-restore") as pool:
        futures = [pool.submit(writer.files, batch) for batch in _batches(files)]
        for future in futures:
            result.failed += future.result()
    for entry in plan.entries:  # hard links, then metadata (directories last, deepest first)
        node = entry.node
        key = (node.get("device"), node.get("inode"))
        path = writer.path(entry)
        first = writer.hardlinks.get(key) if node.get("links") else None  # type: ignore[arg-type]
        if first and first != path and os.path.exists(first):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            os.link(first, path)
            result.files += 1
    for entry in sorted(plan.entries, key=lambda e: e.path.count("/"), reverse=True):
        if entry.node.get("type") == "file":
            continue  # done by the writer, on the open file
        path = writer.path(entry)
        if os.path.lexists(path):
            _metadata(path, entry.node, is_root, result, path)
    result.seconds = time.perf_counter() - started

    return result
