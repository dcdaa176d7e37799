"""Restore a snapshot (or the parts matching globs) into a target directory, safely.

- Every tree is validated (:func:`sealbox.repo.tree.decode_tree`: safe, unique names, known
  types). Everything below the target is reached through directory descriptors opened with
  ``O_NOFOLLOW`` (:mod:`sealbox.repo.dirfd`): nothing restored or already there is ever followed
  as a symlink; what is in the way of a node is replaced. Files are created
  ``O_CREAT|O_EXCL|O_NOFOLLOW`` and all metadata goes through a descriptor, so a name swapped for
  a symlink between two steps is never written or chmod-ed through.
- Free space is checked before anything is written, with the numbers in the error.
- Every chunk is authenticated and checked against its keyed id on the way in; after a file is
  written it is read back through the same descriptor and compared. A file that fails is removed,
  never left under its name; every failure (a file, an unreadable directory listing) is listed.
- Privileged metadata (owners, set-id bits, devices, capabilities) only on request
  (:class:`RestoreOptions`): the backup being restored may be forged.
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import blake3

from sealbox.errors import (
    IntegrityError,
    KeyMaterialError,
    NotFoundError,
    OutputError,
    PolicyError,
)
from sealbox.repo.blobs import BlobReader
from sealbox.repo.dirfd import DirCache, clear, make_dir
from sealbox.repo.repository import Index, Repository, Snapshot
from sealbox.repo.tree import decode_tree, node_name

__all__ = [
    "RestoreOptions",
    "RestorePlan",
    "RestoreResult",
    "entry_content",
    "plan_restore",
    "run_restore",
]

WORKERS = int(os.environ.get("SEALBOX_RESTORE_WORKERS", "0")) or 3
LARGE_FILE = 4 * 1024 * 1024
BATCH_FILES = 512
READ_BACK = 4 << 20
MAX_WARNINGS = 20
DIR_FDS = 256  # directory descriptors kept open (a restore may hold tens of thousands of them)
# What a blob read may raise for one file or one directory: that item fails, the rest goes on.
_UNREADABLE = (IntegrityError, KeyMaterialError, NotFoundError)
_SETID = stat.S_ISUID | stat.S_ISGID
_FILE_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_GLOB = set("*?[")


@dataclass(frozen=True)
class RestoreOptions:
    """What a restore may do beyond plain files, directories, symlinks, fifos, modes and times.

    ``owners``: uid/gid, and extended attributes other than ``user.*`` and the capability (ACLs,
    SELinux labels, ``trusted.*``, which grant to other users or need root); needs root.
    ``special``: setuid/setgid bits on files, device nodes, ``security.capability``.
    """

    owners: bool = False
    special: bool = False


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
    skipped: dict[str, int] = field(default_factory=dict)
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


def _could_match_below(path: str, patterns: list[str]) -> bool:
    """Whether anything under directory ``path`` might match (a glob always might)."""
    absolute = "/" + path
    return any(
        bool(_GLOB & set(p)) or _matches(path, [p]) or p.startswith(absolute + "/")
        for p in patterns
    )


def _walk(
    reader: BlobReader, tree_id: str, prefix: str, damaged: list[tuple[str, str]]
) -> Iterator[Entry]:
    try:
        nodes = decode_tree(reader.read(bytes.fromhex(tree_id)), "/" + prefix)
    except (*_UNREADABLE, ValueError) as exc:
        if not prefix and isinstance(exc, KeyMaterialError):
            raise  # the wrong key: nothing of this snapshot opens
        if not prefix:  # nothing can be restored without the root listing: say so now
            raise IntegrityError(f"cannot read the snapshot's root directory: {exc}") from None
        damaged.append((prefix, str(exc)))
        return
    for node in nodes:
        path = f"{prefix}/{node_name(node)}" if prefix else node_name(node)
        yield Entry(path, node)
        if node.get("type") == "dir" and node.get("subtree"):
            yield from _walk(reader, str(node["subtree"]), path, damaged)


def _free_space(target: Path) -> int:
    probe = target
    while not probe.exists():
        probe = probe.parent
    st = os.statvfs(probe)
    return st.f_bavail * st.f_frsize


def plan_restore(
    repo: Repository,
    index: Index,
    reader: BlobReader,
    snapshot: Snapshot,
    target: Path,
    includes: list[str] | None = None,
) -> RestorePlan:
    """Walk the snapshot's trees. Raises IntegrityError when the root listing is unreadable; a
    damaged subtree is listed in ``damaged_trees`` (a failure of the restore, if it is wanted)."""
    damaged: list[tuple[str, str]] = []
    entries = list(_walk(reader, snapshot.tree, "", damaged))
    if includes:
        wanted = [e for e in entries if _matches(e.path, includes)]
        keep = {e.path for e in wanted}
        for e in wanted:  # the directories leading to each match
            parts = e.path.split("/")
            keep.update("/".join(parts[:i]) for i in range(1, len(parts)))
        entries = [e for e in entries if e.path in keep]
        damaged = [d for d in damaged if _could_match_below(d[0], includes)]
    files = [e for e in entries if e.node.get("type") == "file"]
    return RestorePlan(
        snapshot,
        entries,
        len(files),
        sum(int(e.node.get("size", 0)) for e in files),
        _free_space(target),
        [
            f"/{d}/: directory listing unreadable, nothing below it restored ({e})"
            for d, e in damaged
        ],
    )


def _split(path: str) -> tuple[str, str]:
    parent, _, name = path.rpartition("/")
    return parent, name


class _Writer:
    """The restore's filesystem side: shared by the main thread and the file workers."""

    def __init__(
        self,
        reader: BlobReader,
        dirs: DirCache,
        result: RestoreResult,
        verify: bool,
        options: RestoreOptions,
        on_bytes: Callable[[int], None] | None,
        digests: dict[str, bytes] | None = None,
    ) -> None:
        self.reader, self.dirs, self.result, self.verify = reader, dirs, result, verify
        self.options, self.on_bytes, self.digests = options, on_bytes, digests
        self.ids = (os.geteuid(), os.getegid())
        self.lock = threading.Lock()
        self.meta_failures = 0

    def skip(self, what: str, count: int = 1) -> None:
        with self.lock:
            self.result.skipped[what] = self.result.skipped.get(what, 0) + count

    def files(self, batch: list[Entry]) -> tuple[list[tuple[str, str]], int, int]:
        """Write a batch of files; return the ones that failed (path, why), the files and bytes
        done."""
        failed: list[tuple[str, str]] = []
        done = size = 0
        for entry in batch:
            parent, name = _split(entry.path)
            try:
                with self.dirs.dir(parent) as parent_fd:
                    self.file(parent_fd, name, entry)
                done, size = done + 1, size + int(entry.node.get("size", 0))
            except _UNREADABLE as exc:
                failed.append((entry.path, str(exc)))
            except (ValueError, TypeError):
                failed.append((entry.path, "malformed node in the snapshot tree"))
            except OSError as exc:  # a full disk, a read-only target: stop with the reason
                raise OutputError(f"cannot write /{entry.path}: {exc.strerror}") from exc
        return failed, done, size

    def file(self, parent_fd: int, name: str, entry: Entry) -> None:
        # O_EXCL|O_NOFOLLOW: whatever is at the name (a symlink planted there, an old file) makes
        # the create fail and is removed, never written through.
        try:
            fd = os.open(name, _FILE_FLAGS, 0o600, dir_fd=parent_fd)
        except FileExistsError:
            clear(parent_fd, name)
            fd = os.open(name, _FILE_FLAGS, 0o600, dir_fd=parent_fd)
        try:
            digest, written = blake3.blake3(), 0
            for blob_hex in entry.node.get("content", ()):
                data = self.reader.read(bytes.fromhex(blob_hex))
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                digest.update(data)
                written += len(data)
                if self.on_bytes:
                    self.on_bytes(len(data))
            if self.verify:  # the file is new (O_EXCL): what we wrote is all there is to read
                check, offset = blake3.blake3(), 0
                while offset < written:
                    chunk = os.pread(fd, min(READ_BACK, written - offset), offset)
                    if not chunk:
                        break
                    check.update(chunk)
                    offset += len(chunk)
                if check.digest() != digest.digest():
                    raise IntegrityError(
                        "what was written does not read back the same (disk error?)"
                    )
            self.metadata(fd, entry)
            if self.digests is not None:
                with self.lock:
                    self.digests[entry.path] = digest.digest()
        except BaseException:
            # Never leave a partial or unverified file under its real name.
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=parent_fd)
            raise
        finally:
            os.close(fd)

    def mode(self, node: dict[str, Any]) -> int:
        mode = int(node.get("mode", 0o644)) & 0o7777
        if node.get("type") == "dir":
            return mode & ~stat.S_ISUID  # setgid on a directory only passes its group on
        if mode & _SETID and not self.options.special:
            self.skip("setid")
            mode &= ~_SETID
        return mode

    def xattrs(self, node: dict[str, Any]) -> Iterator[tuple[str, bytes]]:
        for name, value in (node.get("xattrs") or {}).items():
            if name.startswith("user."):
                yield name, base64.b64decode(value)
            elif name == "security.capability":
                if self.options.special:
                    yield name, base64.b64decode(value)
                else:
                    self.skip("caps")
            elif self.options.owners:
                yield name, base64.b64decode(value)
            else:
                self.skip("xattrs")

    def metadata(self, target: int | str, entry: Entry) -> None:
        """Owner, mode, extended attributes and times through ``target``: a descriptor (files,
        directories) or ``/proc/self/fd/N`` of an ``O_PATH`` descriptor (fifos, devices)."""
        node = entry.node
        uid, gid = int(node.get("uid", 0)), int(node.get("gid", 0))
        try:
            if self.options.owners:
                os.chown(target, uid, gid)  # before the mode: chown clears set-id bits
            elif (uid, gid) != self.ids:
                self.skip("owners")
            os.chmod(target, self.mode(node))
            for name, value in self.xattrs(node):
                with contextlib.suppress(OSError):
                    os.setxattr(target, name, value)
            mtime = int(node.get("mtime_ns", 0))
            os.utime(target, ns=(mtime, mtime))
        except OSError as exc:
            self.meta_warning(entry, exc)

    def meta_warning(self, entry: Entry, exc: OSError) -> None:
        with self.lock:
            self.meta_failures += 1
            if self.meta_failures <= MAX_WARNINGS:
                self.result.warnings.append(
                    f"/{entry.path}: metadata not restored ({exc.strerror})"
                )

    def special(self, parent_fd: int, name: str, entry: Entry) -> bool:
        """Create a symlink, fifo or device node in place of whatever is at ``name``; False when
        it is not restored (sockets; devices without --special)."""
        kind, node = entry.node.get("type"), entry.node
        if kind == "socket":
            self.skip("sockets")
            return False
        if kind in ("chardev", "blockdev") and not self.options.special:
            self.skip("devices")
            return False
        try:
            self.make(parent_fd, name, node)
        except FileExistsError:  # whatever is there is replaced, never followed
            clear(parent_fd, name)
            self.make(parent_fd, name, node)
        return True

    @staticmethod
    def make(parent_fd: int, name: str, node: dict[str, Any]) -> None:
        kind = node.get("type")
        if kind == "symlink":
            os.symlink(str(node.get("target", "")), name, dir_fd=parent_fd)
        elif kind == "fifo":
            os.mkfifo(name, 0o600, dir_fd=parent_fd)
        else:
            flag = stat.S_IFCHR if kind == "chardev" else stat.S_IFBLK
            os.mknod(name, flag | 0o600, int(node.get("rdev", 0)), dir_fd=parent_fd)

    def special_metadata(self, parent_fd: int, name: str, entry: Entry) -> None:
        node = entry.node
        if node.get("type") == "symlink":  # never chmod: that would follow it
            try:
                if not self.options.owners:
                    if (int(node.get("uid", 0)), int(node.get("gid", 0))) != self.ids:
                        self.skip("owners")
                else:
                    os.chown(
                        name,
                        int(node.get("uid", 0)),
                        int(node.get("gid", 0)),
                        dir_fd=parent_fd,
                        follow_symlinks=False,
                    )
                mtime = int(node.get("mtime_ns", 0))
                os.utime(name, ns=(mtime, mtime), dir_fd=parent_fd, follow_symlinks=False)
            except OSError as exc:
                self.meta_warning(entry, exc)
            return
        # A fifo or device: pin the inode with an O_PATH descriptor, check it is the kind we made,
        # then go through /proc/self/fd/N, which names that inode whatever happens to the name.
        want = {"fifo": stat.S_ISFIFO, "chardev": stat.S_ISCHR, "blockdev": stat.S_ISBLK}
        try:
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
        except OSError as exc:
            self.meta_warning(entry, exc)
            return
        try:
            if not want[str(node.get("type"))](os.fstat(fd).st_mode):
                self.meta_warning(entry, OSError(0, "replaced by something else meanwhile"))
                return
            self.metadata(f"/proc/self/fd/{fd}", entry)
        finally:
            os.close(fd)


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


_SKIPPED = {
    "setid": ("set-id bits of {} file(s)", "--special"),
    "devices": ("{} device node(s)", "--special"),
    "caps": ("{} file capability attribute(s)", "--special"),
    "owners": ("owners of {} entries (left to the restoring user)", "--owners"),
    "xattrs": ("{} ACL/security/trusted attribute(s)", "--owners"),
    "sockets": ("{} socket(s) (never restored)", ""),
}


def skipped_summary(skipped: dict[str, int]) -> str | None:
    """One line saying what the options left out, with counts; None when nothing was."""
    parts = []
    for option in ("--special", "--owners", ""):
        items = [
            text.format(skipped[k])
            for k, (text, o) in _SKIPPED.items()
            if o == option and skipped.get(k)
        ]
        if items:
            parts.append(", ".join(items) + (f" (add {option})" if option else ""))
    return "not restored: " + "; ".join(parts) if parts else None


def entry_content(
    reader: BlobReader, entry: Entry, on_bytes: Callable[[int], None] | None = None
) -> Iterator[bytes]:
    """A file entry's content, blob by blob (authenticated by ``reader``), counted in
    ``on_bytes``: what a database load or a drill streams without writing the file."""
    for blob in entry.node.get("content", ()):
        data = reader.read(bytes.fromhex(blob))
        if on_bytes:
            on_bytes(len(data))
        yield data


def run_restore(
    repo: Repository,
    index: Index,
    reader: BlobReader,
    plan: RestorePlan,
    target: Path,
    *,
    verify: bool = True,
    on_bytes: Callable[[int], None] | None = None,
    options: RestoreOptions | None = None,
    digests: dict[str, bytes] | None = None,
) -> RestoreResult:
    """Write the plan under ``target``. Raises OutputError (no space, an unwritable target) and
    PolicyError (``owners`` without root); failures of single items are in ``result.failed``.
    ``digests`` receives each written file's BLAKE3 (of the snapshot's authenticated content)
    by path, for a drill to compare with what the disk holds afterwards."""
    started = time.perf_counter()
    options = options or RestoreOptions()
    if options.owners and os.geteuid() != 0:
        raise PolicyError("restoring owners (--owners) needs root")
    if plan.bytes > plan.free:
        raise OutputError(
            f"not enough space in {target}: the restore needs {plan.bytes:,} bytes, {plan.free:,} are free"
        )
    result = RestoreResult(failed=list(plan.damaged_trees))
    try:
        target.mkdir(parents=True, exist_ok=True)
        root_fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise OutputError(f"cannot open {target}: {exc.strerror}") from exc
    dirs = DirCache(root_fd, DIR_FDS)
    writer = _Writer(reader, dirs, result, verify, options, on_bytes, digests)
    try:
        _restore(repo, plan, writer, result)
    finally:
        dirs.close()
    if writer.meta_failures > MAX_WARNINGS:
        result.warnings.append(
            f"metadata not restored on {writer.meta_failures - MAX_WARNINGS} more entries"
        )
    summary = skipped_summary(result.skipped)
    if summary:
        result.warnings.append(summary)
    result.seconds = time.perf_counter() - started
    return result


def _restore(repo: Repository, plan: RestorePlan, writer: _Writer, result: RestoreResult) -> None:
    hardlinks: dict[tuple[Any, Any], str] = {}
    links: list[tuple[Entry, str]] = []
    files, specials = [], []
    for entry in plan.entries:  # parents come before their contents
        parent, name = _split(entry.path)
        kind = entry.node.get("type")
        if kind == "file":
            key = (entry.node.get("device"), entry.node.get("inode"))
            if entry.node.get("links") and key in hardlinks:
                links.append((entry, hardlinks[key]))  # linked once the first is written
            else:
                if entry.node.get("links"):
                    hardlinks[key] = entry.path
                files.append(entry)
            continue
        try:
            with writer.dirs.dir(parent) as parent_fd:
                if kind == "dir":
                    writer.dirs.add(entry.path, make_dir(parent_fd, name))
                    result.dirs += 1
                elif writer.special(parent_fd, name, entry):
                    specials.append(entry)
                    result.links += 1
        except OSError as exc:
            raise OutputError(f"cannot create /{entry.path}: {exc.strerror}") from exc
    # Network destinations: more workers keep more pack downloads (round trips) in flight.
    workers = WORKERS + 2 if getattr(repo.backend, "round_trips", False) else WORKERS
    failed_paths: set[str] = set()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sealbox-restore") as pool:
        futures = [pool.submit(writer.files, batch) for batch in _batches(files)]
        for future in futures:
            failed, done, size = future.result()
            result.failed += [f"/{path}: {why}" for path, why in failed]
            failed_paths.update(path for path, _ in failed)
            result.files, result.bytes = result.files + done, result.bytes + size
    for entry, first in links:
        if first in failed_paths:
            result.failed.append(f"/{entry.path}: not linked (/{first}, its first name, failed)")
            continue
        (src_dir, src), (dst_dir, dst) = _split(first), _split(entry.path)
        try:
            with writer.dirs.dir(src_dir) as src_fd, writer.dirs.dir(dst_dir) as dst_fd:
                clear(dst_fd, dst)
                os.link(src, dst, src_dir_fd=src_fd, dst_dir_fd=dst_fd, follow_symlinks=False)
        except OSError as exc:
            raise OutputError(f"cannot link /{entry.path}: {exc.strerror}") from exc
        result.files += 1
    # Metadata of everything but files (done on the open file), deepest first: a directory's
    # times and mode are set after its contents.
    later = [e for e in plan.entries if e.node.get("type") == "dir"] + specials
    for entry in sorted(later, key=lambda e: e.path.count("/"), reverse=True):
        parent, name = _split(entry.path)
        try:
            if entry.node.get("type") == "dir":
                with writer.dirs.dir(entry.path) as fd:
                    writer.metadata(fd, entry)
            else:
                with writer.dirs.dir(parent) as parent_fd:
                    writer.special_metadata(parent_fd, name, entry)
        except OSError as exc:  # the directory went away or became a symlink meanwhile
            writer.meta_warning(entry, exc)
