"""``file://`` backend: a directory, typically a mounted CIFS or NFS share.

Writes are atomic: data goes to a hidden temporary file in the target directory, is fsynced, then
renamed (or hard-linked, for exclusive puts) into place. The directories are fsynced by
``flush()`` (once each, however many objects landed there), which makes the names durable.
"""

from __future__ import annotations

import errno
import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from sealbox.backends.base import Capacity, ObjectInfo, validate_name
from sealbox.errors import DestinationError, NotFoundError

__all__ = ["LocalBackend"]

_TMP_PREFIX = ".tmp-"
_IMMUTABLE = "data/"  # pack objects: named by their content, never rewritten
_MAX_FDS = 32


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalBackend:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._fds: dict[str, int] = {}
        self._fd_lock = threading.Lock()
        self._dirty: set[Path] = set()
        self._dirty_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str) -> LocalBackend:
        path = unquote(urlsplit(url).path) if "://" in url else url
        return cls(Path(path).expanduser().absolute())

    @property
    def display(self) -> str:
        return f"file://{self.root}"

    def _fail(self, action: str, exc: OSError) -> DestinationError:
        reason = exc.strerror or type(exc).__name__
        return DestinationError(f"{self.display}: cannot {action}: {reason}")

    def _path(self, name: str) -> Path:
        return self.root / validate_name(name)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if not self.root.is_dir():
            raise DestinationError(f"{self.display}: no such directory (is the share mounted?)")
        try:
            for dirpath, dirnames, filenames in os.walk(self.root):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                rel = os.path.relpath(dirpath, self.root)
                for filename in filenames:
                    if filename.startswith("."):
                        continue
                    name = filename if rel == "." else f"{rel}/{filename}"
                    if name.startswith(prefix):
                        try:
                            st = os.stat(os.path.join(dirpath, filename))
                        except FileNotFoundError:
                            continue  # deleted while listing (a lock released): not an object now
                        yield ObjectInfo(name, st.st_size, st.st_mtime)
        except OSError as exc:
            raise self._fail("list", exc) from exc

    def stat(self, name: str) -> ObjectInfo:
        try:
            st = self._path(name).stat()
        except FileNotFoundError:
            raise NotFoundError(f"{self.display}: no object {name!r}") from None
        except OSError as exc:
            raise self._fail(f"stat {name}", exc) from exc
        return ObjectInfo(name, st.st_size, st.st_mtime)

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        try:
            if length is not None and name.startswith(_IMMUTABLE):
                return self._pread(name, offset, length)
            with open(self._path(name), "rb") as handle:
                handle.seek(offset)
                return handle.read() if length is None else handle.read(length)
        except FileNotFoundError:
            raise NotFoundError(f"{self.display}: no object {name!r}") from None
        except OSError as exc:
            raise self._fail(f"read {name}", exc) from exc

    def _pread(self, name: str, offset: int, length: int) -> bytes:
        """Range reads of packs through a few cached descriptors: a restore reads thousands of
        blobs from the same packs. Only content-named objects are cached (they never change)."""
        with self._fd_lock:
            fd = self._fds.pop(name, None)
            if fd is None:
                fd = os.open(self._path(name), os.O_RDONLY)
                if len(self._fds) >= _MAX_FDS:
                    os.close(self._fds.pop(next(iter(self._fds))))
            self._fds[name] = fd  # most recently used last
        data = os.pread(fd, length, offset)
        return data

    def put(
        self, name: str, data: bytes | bytearray | memoryview, *, exclusive: bool = False
    ) -> None:
        final = self._path(name)
        tmp = final.parent / f"{_TMP_PREFIX}{secrets.token_hex(8)}"
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            if exclusive:
                os.link(tmp, final)  # fails with EEXIST instead of replacing
                os.unlink(tmp)
            else:
                os.replace(tmp, final)
            with self._dirty_lock:
                self._dirty.add(final.parent)  # its fsync waits for flush(): one per directory
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno == errno.EEXIST:
                raise DestinationError(f"{self.display}: object {name!r} exists already") from exc
            raise self._fail(f"write {name}", exc) from exc

    def flush(self) -> None:
        """Make the renames of every put so far durable (fsync their directories, once each)."""
        with self._dirty_lock:
            dirty, self._dirty = self._dirty, set()
        try:
            for directory in dirty:
                _fsync_dir(directory)
        except OSError as exc:
            raise self._fail("sync", exc) from exc

    def delete(self, name: str) -> None:
        try:
            self._path(name).unlink(missing_ok=True)
        except OSError as exc:
            raise self._fail(f"delete {name}", exc) from exc

    def filesystem(self) -> str | None:
        """The type of the filesystem holding the directory (cifs, nfs4, ext4 ...), from
        /proc/self/mountinfo: the longest mount point above it wins."""
        try:
            lines = Path("/proc/self/mountinfo").read_text().splitlines()
        except OSError:
            return None
        target = os.path.realpath(self._existing())
        best, kind = "", None
        for line in lines:
            fields = line.split(" - ")
            if len(fields) != 2:
                continue
            mount = fields[0].split()[4].replace("\\040", " ")
            if (target == mount or target.startswith(mount.rstrip("/") + "/")) and len(
                mount
            ) >= len(best):
                best, kind = mount, fields[1].split()[0]
        return kind

    def _existing(self) -> Path:
        path = self.root
        while not path.exists() and path.parent != path:
            path = path.parent
        return path

    def capacity(self) -> Capacity:
        try:
            st = os.statvfs(self.root)
        except OSError as exc:
            raise self._fail("measure free space", exc) from exc
        return Capacity(free=st.f_bavail * st.f_frsize, total=st.f_blocks * st.f_frsize)

    def close(self) -> None:
        self.flush()
        with self._fd_lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()
