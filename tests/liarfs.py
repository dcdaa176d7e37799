"""A FUSE filesystem that lies about writes, as a broken NAS would: the probe's write test must
see through it. Run as ``python -m tests.liarfs MODE BACKING MOUNTPOINT`` (in the foreground; the
test mounts and kills it). It passes every call to the directory BACKING, except:

- ``torn-rename``: a rename onto an existing name is done as a copy of half the source's bytes,
  then an unlink (a share without an atomic rename that is interrupted, or drops the tail);
- ``drop-writes``: writes past the first 4 KiB of a file are answered "done", the file grows,
  but those bytes are never stored (zeros are); mounted with ``kernel_cache`` and with times
  that never change, so
  what this client wrote stays in its page cache and reads of it look right (a client whose
  write-back never reached the server).

Needs libfuse 3 (Debian fuse3) and mfusepy (the dev extras).
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Any

import mfusepy as fuse

KEPT = 4096


class Liar(fuse.Operations):  # type: ignore[misc]
    use_ns = True

    def __init__(self, backing: str, mode: str) -> None:
        self.backing, self.mode = os.path.realpath(backing), mode

    def _p(self, path: str) -> str:
        return os.path.join(self.backing, path.lstrip("/"))

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        try:
            st = os.lstat(self._p(path))
        except OSError as exc:
            raise fuse.FuseOSError(exc.errno) from None
        keys = ("st_ino", "st_mode", "st_nlink", "st_uid", "st_gid", "st_size")
        out: dict[str, Any] = {k: getattr(st, k) for k in keys}
        out.update(st_atime=st.st_atime_ns, st_mtime=st.st_mtime_ns, st_ctime=st.st_ctime_ns)
        if self.mode == "drop-writes" and not os.path.isdir(self._p(path)):
            # Times that never change: the kernel then keeps what this client wrote in its
            # cache (a changed mtime would make it drop the pages and ask the server again).
            out.update(st_mtime=0, st_ctime=0)
        return out

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *os.listdir(self._p(path))]

    def _call(self, func: Any, *args: Any) -> Any:
        try:
            return func(*args)
        except OSError as exc:
            raise fuse.FuseOSError(exc.errno or errno.EIO) from None

    def mkdir(self, path: str, mode: int) -> None:
        self._call(os.mkdir, self._p(path), mode)

    def rmdir(self, path: str) -> None:
        self._call(os.rmdir, self._p(path))

    def unlink(self, path: str) -> None:
        self._call(os.unlink, self._p(path))

    def link(self, target: str, source: str) -> None:
        self._call(os.link, self._p(source), self._p(target))

    def rename(self, old: str, new: str) -> None:
        if self.mode == "torn-rename" and os.path.exists(self._p(new)):
            with open(self._p(old), "rb") as src:
                data = src.read()
            with open(self._p(new), "wb") as dst:
                dst.write(data[: len(data) // 2])
            os.unlink(self._p(old))
            return
        self._call(os.rename, self._p(old), self._p(new))

    def chmod(self, path: str, mode: int) -> None:
        self._call(os.chmod, self._p(path), mode)

    def chown(self, path: str, uid: int, gid: int) -> None:
        self._call(os.chown, self._p(path), uid, gid)

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> None:
        if times is None:
            self._call(os.utime, self._p(path))
        else:
            self._call(lambda: os.utime(self._p(path), ns=times))

    def truncate(self, path: str, length: int, fh: int | None = None) -> None:
        self._call(os.truncate, self._p(path), length)

    def open(self, path: str, flags: int) -> int:
        return int(self._call(os.open, self._p(path), flags & ~os.O_CREAT))

    def create(self, path: str, mode: int, fi: Any = None) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        return int(self._call(os.open, self._p(path), flags, mode))

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return bytes(self._call(os.pread, fh, size, offset))

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        if self.mode == "drop-writes" and offset + len(data) > KEPT:
            # Bytes past the first KEPT of a file are answered "written" and never stored: the
            # file grows, but holds zeros there.
            kept = data[: max(KEPT - offset, 0)]
            if kept:
                self._call(os.pwrite, fh, kept, offset)
            if os.fstat(fh).st_size < offset + len(data):
                self._call(os.ftruncate, fh, offset + len(data))
            return len(data)
        return int(self._call(os.pwrite, fh, data, offset))

    def flush(self, path: str, fh: int) -> None:
        return None

    def fsync(self, path: str, datasync: int, fh: int) -> None:
        self._call(os.fsync, fh)

    def fsyncdir(self, path: str, datasync: int, fh: int) -> None:
        return None

    def release(self, path: str, fh: int) -> None:
        self._call(os.close, fh)

    def statfs(self, path: str) -> dict[str, int]:
        st = os.statvfs(self._p(path))
        keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files")
        return {k: getattr(st, k) for k in (*keys, "f_flag", "f_frsize", "f_namemax")}


def main() -> None:
    mode, backing, mountpoint = sys.argv[1:4]
    options: dict[str, Any] = {"foreground": True, "fsname": f"liarfs-{mode}", "use_ino": True}
    if mode == "drop-writes":
        options["kernel_cache"] = True
    fuse.FUSE(Liar(backing, mode), mountpoint, **options)


if __name__ == "__main__":
    main()
