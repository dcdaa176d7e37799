"""``file://`` backend: a directory, typically a mounted CIFS or NFS share.

Writes are atomic: data goes to a hidden temporary file in the target directory, is fsynced, then
renamed (or hard-linked, for exclusive puts) into place. The directories are fsynced by
``flush()`` (once each, however many objects landed there), which makes the names durable.

The storage side controls what is in the share (the file server, or anyone who can write there),
so nothing in it is trusted: every object is reached from a descriptor of the root directory,
component by component, with ``O_NOFOLLOW``. A symlink planted as an object, or as a directory
(``data/b6 -> /etc``), is an error naming it, never followed: a read cannot be sent to
``/dev/zero`` or a FIFO, and a write (as root) cannot land outside the share. Objects must be
regular files (checked on the open descriptor, opened ``O_NONBLOCK`` so a FIFO cannot hang us).
``list`` reports every entry that is not a directory (by ``lstat``, never following it) and
descends real directories only; reading a planted entry it reported fails with "not a regular
file". The root itself is the operator's choice and may be a symlink. Every ``OSError`` is
turned into a :class:`~sealbox.errors.DestinationError` (cleanup included), by errno
(``localfs.os_error``).

A share can vanish or lie under a running backend. A lost one (ENOTCONN from a dead FUSE daemon,
EIO from an sshfs or CIFS client whose server went away, ESTALE, timeouts) is a
:class:`~sealbox.errors.TransientDestinationError` ("the share was lost"), retried by
``retry.Retrying`` and then reported; a full (ENOSPC, EDQUOT) or read-only (EROFS) one is
permanent. A share unmounted during a run leaves its mount point at the same path: the root's
device and inode are pinned when first opened, so the backend refuses to read or write whatever
is there instead (the appliance's own disk). Temporary files of puts that never finished are
removed by a later writing run (:meth:`LocalBackend.sweep_temporaries` states the rule).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from sealbox.backends.base import Capacity, ObjectInfo, validate_name
from sealbox.backends.localfs import (
    NO_HARD_LINKS,
    NoHardLinksError,
    durability_warnings,
    mount_of,
    os_error,
)
from sealbox.errors import ConfigError, DestinationError, NotFoundError, ObjectExistsError

__all__ = [
    "SCHEMES",
    "TMP_STALE_AFTER",
    "LocalBackend",
    "check_local_url",
    "open_destination",
]

_TMP_PREFIX = ".tmp-"
_OUR_TMP = re.compile(r"^\.tmp-[0-9a-f]{16}$")  # exactly what put names them
# A put's temporary file is written without pause from its creation to its rename, so its mtime
# stays within seconds of the present while its put lives. One not modified for an hour belongs
# to no live put (see sweep_temporaries for what a wrong guess could cost).
TMP_STALE_AFTER = 3600.0
_IMMUTABLE = "data/"  # pack objects: named by their content, never rewritten
_MAX_FDS = 32
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _close(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


SCHEMES = ("file",)  # and a plain absolute path


def check_local_url(url: str) -> None:
    """ValueError for a file:// URL with a host (a plain path is fine)."""
    if "://" in url and urlsplit(url).netloc not in ("", "localhost"):
        raise ValueError("file:// URLs take no host: use file:///absolute/path")


def open_destination(url: str, options: object = None) -> LocalBackend:
    """A directory has no options beyond every destination's (``LocalOptions``)."""
    try:
        check_local_url(url)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    return LocalBackend.from_url(url)


class LocalBackend:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._fds: dict[str, int] = {}
        self._fd_lock = threading.Lock()
        self._dirty: set[str] = set()  # directories (relative) holding renames not yet fsynced
        self._dirty_lock = threading.Lock()
        self._pinned: tuple[int, int] | None = None  # (st_dev, st_ino) of the root, once opened
        self._pin_fd: int | None = None
        self._pin_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str) -> LocalBackend:
        path = unquote(urlsplit(url).path) if "://" in url else url
        return cls(Path(path).expanduser().absolute())

    @property
    def display(self) -> str:
        return f"file://{self.root}"

    def _fail(self, action: str, exc: OSError) -> DestinationError:
        return os_error(self.display, action, exc)

    def _root_fd(self, create: bool = False) -> int:
        """The root directory (followed if it is a symlink: the operator chose it); raises
        FileNotFoundError when it does not exist (and ``create`` is off).

        The first root this backend opens is pinned (device and inode): a share unmounted under
        a running backend leaves its empty mount point, or another filesystem, at the same path,
        and writing on there would put backups on the appliance's own disk. A root that is gone
        or is another directory afterwards is a lost share (a DestinationError), never created
        again and never a "no such object"."""
        if create and self._pinned is None:
            self.root.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            if self._pinned is not None:
                raise self._lost("is gone") from None
            raise
        try:
            st = os.fstat(fd)
            with self._pin_lock:  # the engine's threads share this backend
                if self._pinned is None:
                    # Held open until close(): while it is, the filesystem cannot be released,
                    # so its device number cannot go to another mount (tmpfs, FUSE and NFS
                    # mounts take theirs from a pool that reuses them).
                    self._pin_fd = os.dup(fd)
                    self._pinned = (st.st_dev, st.st_ino)
            if (st.st_dev, st.st_ino) != self._pinned:
                raise self._lost("is another directory now")
        except BaseException:
            _close(fd)
            raise
        return fd

    def _lost(self, what: str) -> DestinationError:
        return DestinationError(
            f"{self.display}: the share was lost: the directory {what} (unmounted or replaced"
            " during the run; nothing is written to what is there instead)"
        )

    def _walk(self, parts: list[str], create: bool = False) -> int:
        """A descriptor of the directory ``parts`` under the root, each component opened with
        ``O_NOFOLLOW`` (made if missing, with ``create``). FileNotFoundError if one is missing;
        DestinationError if one is not a directory (a planted symlink or file)."""
        fd = self._root_fd(create)
        try:
            for i, part in enumerate(parts):
                try:
                    child = os.open(part, _DIR, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    with contextlib.suppress(FileExistsError):  # mkdir never follows a symlink
                        os.mkdir(part, dir_fd=fd)
                    child = os.open(part, _DIR, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        where = "/".join(parts[: i + 1])
                        raise DestinationError(
                            f"{self.display}: {where} is not a directory (a symlink or file"
                            " planted there?): refusing to follow it"
                        ) from None
                    raise
                _close(fd)
                fd = child
        except BaseException:
            _close(fd)
            raise
        return fd

    def _split(self, name: str) -> tuple[list[str], str]:
        *parents, last = validate_name(name).split("/")
        return parents, last

    def _open(self, name: str) -> int:
        """A read descriptor of object ``name``, which must be a regular file."""
        parents, last = self._split(name)
        parent = self._walk(parents)
        try:
            fd = os.open(last, _READ, dir_fd=parent)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise self._not_regular(name) from None
            raise
        finally:
            _close(parent)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise self._not_regular(name)
        except BaseException:
            _close(fd)
            raise
        return fd

    def _not_regular(self, name: str) -> DestinationError:
        return DestinationError(
            f"{self.display}: object {name!r} is not a regular file (a symlink, FIFO or device"
            " planted there?): refusing to read it"
        )

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        try:
            root = self._root_fd()
        except FileNotFoundError:
            raise DestinationError(
                f"{self.display}: no such directory (is the share mounted?)"
            ) from None
        except OSError as exc:
            raise self._fail("list", exc) from exc
        try:
            yield from self._list(root, "", prefix)
        except OSError as exc:
            raise self._fail("list", exc) from exc
        finally:
            _close(root)

    def _list(self, fd: int, rel: str, prefix: str) -> Iterator[ObjectInfo]:
        found = []
        with os.scandir(fd) as entries:
            for e in entries:
                try:
                    found.append((e.name, e.stat(follow_symlinks=False)))
                except FileNotFoundError:
                    continue  # deleted while listing (a lock released): not an object now
        for entry, st in found:
            if entry.startswith("."):
                continue  # temporary files of unfinished puts, and nothing else of ours
            name = f"{rel}{entry}"
            if stat.S_ISDIR(st.st_mode):
                if not (prefix.startswith(name + "/") or (name + "/").startswith(prefix)):
                    continue
                try:
                    child = os.open(entry, _DIR, dir_fd=fd)
                except FileNotFoundError:
                    continue  # removed meanwhile
                try:
                    yield from self._list(child, name + "/", prefix)
                finally:
                    _close(child)
            elif name.startswith(prefix):
                yield ObjectInfo(name, st.st_size, st.st_mtime)

    def stat(self, name: str) -> ObjectInfo:
        parents, last = self._split(name)
        try:
            parent = self._walk(parents)
            try:
                st = os.stat(last, dir_fd=parent, follow_symlinks=False)
            finally:
                _close(parent)
        except FileNotFoundError:
            raise NotFoundError(f"{self.display}: no object {name!r}") from None
        except OSError as exc:
            raise self._fail(f"stat {name}", exc) from exc
        if not stat.S_ISREG(st.st_mode):
            raise self._not_regular(name)
        return ObjectInfo(name, st.st_size, st.st_mtime)

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        try:
            if length is not None and name.startswith(_IMMUTABLE):
                return self._pread(name, offset, length)
            fd = self._open(name)
            try:
                if length is None:
                    length = max(os.fstat(fd).st_size - offset, 0)
                return self._read(fd, offset, length)
            finally:
                _close(fd)
        except FileNotFoundError:
            raise NotFoundError(f"{self.display}: no object {name!r}") from None
        except OSError as exc:
            raise self._fail(f"read {name}", exc) from exc

    @staticmethod
    def _read(fd: int, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes at ``offset`` (fewer only at the end of the file)."""
        data = os.pread(fd, length, offset)
        if len(data) == length or not data:
            return data
        parts = [data]
        while length > (got := sum(map(len, parts))):
            more = os.pread(fd, length - got, offset + got)
            if not more:
                break
            parts.append(more)
        return b"".join(parts)

    def _forget_fd(self, name: str) -> None:
        with self._fd_lock:
            fd = self._fds.pop(name, None)
        if fd is not None:
            _close(fd)

    def _pread(self, name: str, offset: int, length: int) -> bytes:
        """Range reads of packs through a few cached descriptors: a restore reads thousands of
        blobs from the same packs. Only content-named objects are cached: they change only when a
        repair replaces a damaged one, through ``put``, which drops the descriptor."""
        with self._fd_lock:
            fd = self._fds.pop(name, None)
            if fd is None:
                fd = self._open(name)
                if len(self._fds) >= _MAX_FDS:
                    _close(self._fds.pop(next(iter(self._fds))))
            self._fds[name] = fd  # most recently used last
        return self._read(fd, offset, length)

    def put(
        self, name: str, data: bytes | bytearray | memoryview, *, exclusive: bool = False
    ) -> None:
        parents, last = self._split(name)
        tmp = f"{_TMP_PREFIX}{secrets.token_hex(8)}"
        parent: int | None = None
        try:
            parent = self._walk(parents, create=True)
            fd = os.open(tmp, _NEW, 0o600, dir_fd=parent)
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)  # an error here (NFS reports late write errors) fails the put
            if exclusive:  # link fails with EEXIST instead of replacing; never follows
                try:
                    os.link(tmp, last, src_dir_fd=parent, dst_dir_fd=parent, follow_symlinks=False)
                except OSError as exc:
                    if exc.errno in NO_HARD_LINKS:
                        raise NoHardLinksError(exc.errno, exc.strerror) from exc
                    raise
                os.unlink(tmp, dir_fd=parent)
            else:  # rename replaces a planted symlink itself, never what it points to
                os.replace(tmp, last, src_dir_fd=parent, dst_dir_fd=parent)
                self._forget_fd(name)  # a repair replaces a damaged pack: read the new one
            with self._dirty_lock:
                self._dirty.add("/".join(parents))  # fsynced by flush(): once per directory
        except OSError as exc:
            if parent is not None:
                with contextlib.suppress(OSError):  # the share may be gone: report the first error
                    os.unlink(tmp, dir_fd=parent)
            if exc.errno == errno.EEXIST:
                raise ObjectExistsError(f"{self.display}: object {name!r} exists already") from exc
            if isinstance(exc, NoHardLinksError):
                raise DestinationError(
                    f"{self.display}: cannot write {name}: the share does not support hard links"
                    f" ({exc.strerror}), which exclusive writes (locks, snapshots, secrets backups)"
                    " need: mount it with the kernel's CIFS or NFS client, not a FUSE client"
                    " such as smbnetfs"
                ) from exc
            raise self._fail(f"write {name}", exc) from exc
        finally:
            if parent is not None:
                _close(parent)

    def flush(self) -> None:
        """Make the renames of every put so far durable (fsync their directories, once each)."""
        with self._dirty_lock:
            dirty, self._dirty = self._dirty, set()
        try:
            for directory in dirty:
                fd = self._walk(directory.split("/") if directory else [])
                try:
                    os.fsync(fd)
                finally:
                    _close(fd)
        except OSError as exc:
            raise self._fail("sync", exc) from exc

    def delete(self, name: str) -> None:
        parents, last = self._split(name)
        try:
            parent = self._walk(parents)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise self._fail(f"delete {name}", exc) from exc
        self._forget_fd(name)
        try:
            os.unlink(last, dir_fd=parent)  # a planted symlink is removed itself, not its target
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._fail(f"delete {name}", exc) from exc
        finally:
            _close(parent)

    def filesystem(self) -> str | None:
        """The type of the filesystem holding the directory (cifs, nfs4, ext4 ...), from
        /proc/self/mountinfo: the longest mount point above it wins."""
        try:
            target = os.path.realpath(self._existing())
        except OSError:  # a lost share (ENOTCONN, ESTALE): the type is unknown, not a failure
            return None
        mount = mount_of(target)
        return mount[0] if mount else None

    def durability_warnings(self) -> tuple[str, ...]:
        """What the mount's own options say about fsync (``localfs.durability_warnings``)."""
        try:
            target = os.path.realpath(self._existing())
        except OSError:
            return ()
        return durability_warnings(self.display, mount_of(target))

    def read_uncached(self, name: str) -> bytes:
        """Object ``name`` read after asking the kernel to drop the pages it caches of it
        (``POSIX_FADV_DONTNEED``): on an NFS, CIFS or FUSE mount the bytes then come from the
        server, not from what this client wrote. The probe compares them with what it wrote."""
        try:
            fd = self._open(name)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                return self._read(fd, 0, os.fstat(fd).st_size)
            finally:
                _close(fd)
        except FileNotFoundError:
            raise NotFoundError(f"{self.display}: no object {name!r}") from None
        except OSError as exc:
            raise self._fail(f"read {name}", exc) from exc

    def _existing(self) -> Path:
        path = self.root
        while not path.exists() and path.parent != path:
            path = path.parent
        return path

    def sweep_temporaries(self, recursive: bool = True, older_than: float = TMP_STALE_AFTER) -> int:
        """Remove the temporary files that interrupted puts left (a run killed, or its share
        lost, between the create and the rename); returns how many. The rule: only regular
        files named exactly as ``put`` names them (``.tmp-`` and 16 hex digits), by ``lstat``,
        whose mtime is more than ``older_than`` seconds before now. Nothing else is touched: no
        object (objects never start with a dot), no symlink, nothing of another program's.

        If the share's clock runs more than ``older_than`` behind ours, a live put of another
        writer could lose its temporary file: that put then fails (its rename finds nothing) and
        its run reports a destination error; no published object is ever at risk. With
        ``recursive`` off only the root directory is swept (the secrets backups live there,
        and the repository below is its writer's to sweep). A directory missing is nothing to
        do; any other failure is a DestinationError."""
        deadline = time.time() - older_than
        removed = 0
        try:
            root = self._root_fd()
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise self._fail("clean up temporary files", exc) from exc
        try:
            removed = self._sweep(root, deadline, recursive)
        except OSError as exc:
            raise self._fail("clean up temporary files", exc) from exc
        finally:
            _close(root)
        return removed

    def _sweep(self, fd: int, deadline: float, recursive: bool) -> int:
        removed = 0
        with os.scandir(fd) as scan:
            entries = list(scan)
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if _OUR_TMP.match(entry.name) and stat.S_ISREG(st.st_mode) and st.st_mtime < deadline:
                try:
                    os.unlink(entry.name, dir_fd=fd)
                    removed += 1
                except FileNotFoundError:
                    pass  # another run swept it first
            elif recursive and stat.S_ISDIR(st.st_mode) and not entry.name.startswith("."):
                try:
                    child = os.open(entry.name, _DIR, dir_fd=fd)
                except FileNotFoundError:
                    continue
                try:
                    removed += self._sweep(child, deadline, recursive)
                finally:
                    _close(child)
        return removed

    def capacity(self) -> Capacity:
        try:
            st = os.statvfs(self.root)
        except OSError as exc:
            raise self._fail("measure free space", exc) from exc
        return Capacity(free=st.f_bavail * st.f_frsize, total=st.f_blocks * st.f_frsize)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            with self._fd_lock:
                for fd in self._fds.values():
                    _close(fd)
                self._fds.clear()
                if self._pin_fd is not None:
                    _close(self._pin_fd)
                    self._pin_fd = None
