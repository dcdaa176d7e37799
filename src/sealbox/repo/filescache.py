"""The local files cache: for each file of the last backup, (size, mtime, ctime, inode, blob ids).

It lives on the appliance (``state_dir/repos/<repo id>/files-<kind>-<paths>.cache``, mode 0600 in
a 0700 directory), never in the repository: the repository's trees are sealed and the appliance
cannot read them back, so this is how an unchanged file is recognised without reading it. An
entry is used only if every blob it names is still in the index (a prune may have removed them),
so a tampered cache can cost re-reading, or name blobs that are checked anyway, never make a
snapshot point at data the destination lacks.

It is never held whole in memory: one record per directory, written in the order the walker
finishes directories (depth first, each directory after everything below it, names sorted), and
read back in that same order by the next run, which asks for each directory's record as it
reaches it. A record the walk has passed is skipped; a missing, damaged or foreign cache only
costs re-reading files. Format (docs/design/format.md, "Local state"): ``SBXfiles1\\n``, then
records ``length(u32) path_len(u32) path count(u32)`` and per file ``name_len(u16) name size(u64)
mtime_ns(i64) ctime_ns(i64) inode(u64) ids(u32) id*32``, big-endian; names and paths as bytes.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import struct
import time
from pathlib import Path
from typing import BinaryIO

__all__ = ["FilesCache", "walk_order"]

MAGIC = b"SBXfiles1\n"
STALE = 24 * 3600  # a temporary cache this old is a killed run's (a live run's is rewritten)
MAX_RECORD = 256 << 20  # a directory of about two million files
_LEN = struct.Struct(">I")
_FILE = struct.Struct(">QqqQI")
_NAME = struct.Struct(">H")
ID_LEN = 32

# name -> (size, mtime_ns, ctime_ns, inode, ids)
Record = dict[bytes, tuple[int, int, int, int, list[bytes]]]
Key = tuple[tuple[int, bytes], ...]


def walk_order(path: bytes) -> Key:
    """The position of a directory in the walker's finishing order: below a directory comes
    before the directory itself; siblings by name."""
    parts = path.rstrip(b"/").split(b"/")  # "/" itself: one empty part, like the root of "/a"
    return (*((0, part) for part in parts), (1, b""))


def _decode(body: bytes) -> tuple[bytes, Record]:
    (plen,) = _LEN.unpack_from(body, 0)
    path = body[4 : 4 + plen]
    pos = 4 + plen
    (count,) = _LEN.unpack_from(body, pos)
    pos += 4
    out: Record = {}
    for _ in range(count):
        (nlen,) = _NAME.unpack_from(body, pos)
        name = body[pos + 2 : pos + 2 + nlen]
        pos += 2 + nlen
        size, mtime, ctime, ino, nids = _FILE.unpack_from(body, pos)
        pos += _FILE.size
        ids = [body[pos + i * ID_LEN : pos + (i + 1) * ID_LEN] for i in range(nids)]
        pos += nids * ID_LEN
        if pos > len(body):
            raise ValueError("truncated record")
        out[name] = (size, mtime, ctime, ino, ids)
    if pos != len(body):
        raise ValueError("trailing bytes in a record")
    return path, out


class FilesCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._reader: BinaryIO | None = None
        self._next: tuple[Key, bytes, bytes] | None = None  # the record read ahead (undecoded)
        self._writer: BinaryIO | None = None
        self._tmp: Path | None = None

    def load(self) -> FilesCache:
        """Open the last run's cache to read and a new one to write (nothing is read yet)."""
        try:
            reader = open(self.path, "rb", buffering=1 << 20)  # noqa: SIM115 (kept open)
        except OSError:
            reader = None  # a missing cache only costs re-reading files
        if reader is not None and reader.read(len(MAGIC)) != MAGIC:
            reader.close()
            reader = None
        self._reader = reader
        self._advance()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        for left in self.path.parent.glob(f".{self.path.name}.*"):  # a killed run's
            with contextlib.suppress(OSError):
                if time.time() - left.stat().st_mtime > STALE:
                    left.unlink()
        self._tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}")
        fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        self._writer = os.fdopen(fd, "wb", buffering=1 << 20)
        self._writer.write(MAGIC)
        return self

    def _advance(self) -> None:
        """Read the next record's path and body; at the end or on damage, stop reading."""
        self._next = None
        if self._reader is None:
            return
        try:
            head = self._reader.read(4)
            if len(head) < 4:
                raise EOFError
            (length,) = _LEN.unpack(head)
            if not 8 <= length <= MAX_RECORD:
                raise ValueError("record length out of range")
            body = self._reader.read(length)
            if len(body) != length:
                raise EOFError
            (plen,) = _LEN.unpack_from(body, 0)
            path = body[4 : 4 + plen]
            self._next = (walk_order(path), path, body)
        except (OSError, ValueError, EOFError, struct.error):
            self._reader.close()
            self._reader = None

    def directory(self, path: str) -> Record:
        """The last run's record of directory ``path`` (empty if it has none). Directories must
        be asked for in walk order (:func:`walk_order`); records passed over are dropped."""
        raw = os.fsencode(path)
        key = walk_order(raw)
        while self._next is not None and self._next[0] < key:
            self._advance()
        if self._next is None or self._next[1] != raw:
            return {}
        body = self._next[2]
        self._advance()
        try:
            return _decode(body)[1]
        except (ValueError, struct.error):
            return {}

    @staticmethod
    def lookup(record: Record, name: str, st: os.stat_result) -> list[bytes] | None:
        """The blob ids of an unchanged file (same size, mtime, ctime and inode), or None."""
        entry = record.get(os.fsencode(name))
        if entry is not None and entry[:4] == (
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
            st.st_ino,
        ):
            return entry[4]
        return None

    def remember(self, path: str, files: list[tuple[str, os.stat_result, list[bytes]]]) -> None:
        """Write the record of directory ``path``: its files, their stat and blob ids."""
        if self._writer is None or not files:
            return
        raw = os.fsencode(path)
        parts = [_LEN.pack(len(raw)), raw, _LEN.pack(len(files))]
        for name, st, ids in files:
            encoded = os.fsencode(name)
            parts.append(_NAME.pack(len(encoded)) + encoded)
            parts.append(
                _FILE.pack(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, len(ids))
            )
            parts.extend(ids)
        body = b"".join(parts)
        if len(body) > MAX_RECORD:
            return  # such a directory is re-read next time rather than a record refused
        self._writer.write(_LEN.pack(len(body)))
        self._writer.write(body)

    def save(self) -> None:
        """Replace the last run's cache with this run's (after the snapshot is stored)."""
        self.close_reader()
        if self._writer is None or self._tmp is None:
            return
        self._writer.flush()
        os.fsync(self._writer.fileno())
        self._writer.close()
        self._writer = None
        os.replace(self._tmp, self.path)
        self._tmp = None

    def close_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self._next = None

    def abandon(self) -> None:
        """The run failed: keep the last run's cache, drop this one's."""
        self.close_reader()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._tmp.unlink()
            self._tmp = None
