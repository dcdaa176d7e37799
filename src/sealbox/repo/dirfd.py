"""Writing under a target directory through directory descriptors, never following a symlink.

A restore writes into a directory that may already hold anything: a symlink where a directory of
the snapshot goes (planted by someone who can write there, or by a forged tree) would send
everything below it elsewhere if paths were resolved by name. So every operation here is
relative to a directory descriptor opened with ``O_DIRECTORY|O_NOFOLLOW`` from the target down:
no component below the target is ever followed, and whatever is in the way of a node is removed,
not followed. The target itself is the operator's choice and may be a symlink.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import threading
from collections import OrderedDict
from collections.abc import Iterator

__all__ = ["DIR_FLAGS", "DirCache", "clear", "make_dir", "open_dir"]

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_IN_THE_WAY = (errno.ELOOP, errno.ENOTDIR)


def open_dir(parent_fd: int, name: str) -> int:
    """The directory ``name`` under ``parent_fd``; OSError (ELOOP, ENOTDIR) if it is not one."""
    return os.open(name, DIR_FLAGS, dir_fd=parent_fd)


def clear(parent_fd: int, name: str) -> None:
    """Remove whatever is at ``name`` (a file, a symlink itself, a directory tree); nothing is ok."""
    try:
        os.unlink(name, dir_fd=parent_fd)
    except FileNotFoundError:
        pass
    except OSError as exc:
        if exc.errno not in (errno.EISDIR, errno.EPERM):
            raise
        # rmtree with dir_fd works on descriptors throughout and never follows a symlink.
        shutil.rmtree(name, dir_fd=parent_fd)


def make_dir(parent_fd: int, name: str, mode: int = 0o700) -> int:
    """Open directory ``name`` under ``parent_fd``, creating it, replacing anything in the way."""
    try:
        os.mkdir(name, mode, dir_fd=parent_fd)
    except FileExistsError:
        try:
            return open_dir(parent_fd, name)
        except OSError as exc:
            if exc.errno not in _IN_THE_WAY:
                raise
        clear(parent_fd, name)  # a symlink, a file ...: replaced, never followed
        os.mkdir(name, mode, dir_fd=parent_fd)
    return open_dir(parent_fd, name)


class DirCache:
    """Descriptors of directories under a root, by "/"-separated relative path ("" = the root).

    At most ``capacity`` are kept open (least recently used closed first); a path not cached is
    opened component by component from its deepest cached ancestor, each with ``O_NOFOLLOW``, so
    a directory replaced by a symlink since it was made fails (ELOOP) instead of being followed.
    With ``create``, missing directories are made (:func:`make_dir`). Thread-safe: :meth:`dir`
    pins a descriptor while it is in use, and pinned ones are never closed.
    """

    def __init__(self, root_fd: int, capacity: int = 256, *, create: bool = False) -> None:
        self.capacity, self.create = capacity, create
        self._fds: OrderedDict[str, int] = OrderedDict({"": root_fd})
        self._pins: dict[str, int] = {"": 1}  # the root is never evicted
        self._lock = threading.Lock()

    def add(self, path: str, fd: int) -> None:
        """Take ownership of ``fd``, the directory at ``path`` (just made by the caller)."""
        with self._lock:
            old = self._fds.pop(path, None)
            if old is not None and old != fd and not self._pins.get(path):
                os.close(old)
            self._fds[path] = fd
            self._evict()

    @contextlib.contextmanager
    def dir(self, path: str) -> Iterator[int]:
        """The descriptor of directory ``path``, pinned for the ``with`` block; OSError if a
        component is missing (without ``create``) or is not a directory."""
        with self._lock:
            fd = self._open(path)
            self._pins[path] = self._pins.get(path, 0) + 1
        try:
            yield fd
        finally:
            with self._lock:
                self._pins[path] -= 1
                if not self._pins[path]:
                    del self._pins[path]
                self._evict()

    def _open(self, path: str) -> int:
        fd = self._fds.get(path)
        if fd is not None:
            self._fds.move_to_end(path)
            return fd
        parent, _, name = path.rpartition("/")
        parent_fd = self._open(parent)
        self._pins[parent] = self._pins.get(parent, 0) + 1  # not evicted while we open below it
        try:
            fd = make_dir(parent_fd, name) if self.create else open_dir(parent_fd, name)
        finally:
            self._pins[parent] -= 1
            if not self._pins[parent]:
                del self._pins[parent]
        self._fds[path] = fd
        return fd

    def _evict(self) -> None:
        while len(self._fds) > self.capacity:
            victim = next((p for p in self._fds if not self._pins.get(p)), None)
            if victim is None:
                return
            os.close(self._fds.pop(victim))

    def close(self) -> None:
        """Close every descriptor (the root included)."""
        with self._lock:
            for fd in self._fds.values():
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._fds.clear()
