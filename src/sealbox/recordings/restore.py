"""``sealbox restore recordings``: chosen recordings back into a directory, verified."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import blake3

from sealbox.errors import (
    CorruptFileError,
    IntegrityError,
    KeyMaterialError,
    NotFoundError,
    OutputError,
)
from sealbox.repo.blobs import BlobReader
from sealbox.repo.dirfd import DirCache, clear
from sealbox.repo.tree import node_name

__all__ = ["RecordingsRestore", "restore", "select"]

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_UNREADABLE = (IntegrityError, KeyMaterialError, NotFoundError, ValueError)


@dataclass
class RecordingsRestore:
    files: int = 0
    bytes: int = 0
    failed: list[str] = field(default_factory=list)


def _when(entry: dict[str, Any]) -> datetime:
    try:
        when = datetime.fromisoformat(str(entry.get("ended")).replace("Z", "+00:00"))
    except ValueError:
        raise CorruptFileError(
            f"recording #{entry.get('seq')}: its end time {str(entry.get('ended'))[:40]!r} is"
            " not a time"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def select(
    entries: list[dict[str, Any]],
    session: str | None,
    since: datetime | None,
    until: datetime | None,
) -> list[dict[str, Any]]:
    chosen = [
        e
        for e in entries
        if (session is None or e.get("session") == session)
        and (since is None or _when(e) >= since)
        and (until is None or _when(e) <= until)
    ]
    if not chosen:
        raise NotFoundError(
            "no stored recording matches (see `sealbox snapshots --kind recordings`)"
        )
    return chosen


def restore(reader: BlobReader, entries: list[dict[str, Any]], target: Path) -> RecordingsRestore:
    """Write each recording under ``target`` (its stored relative path), checked against its
    recorded digest before it takes its name: a recording that fails is listed in ``failed`` and
    leaves nothing behind. Directories are reached through ``O_NOFOLLOW`` descriptors
    (:mod:`sealbox.repo.dirfd`): a symlink already in the target is replaced, never followed.
    Raises IntegrityError when none could be restored, OutputError when the target is unwritable.
    """
    result = RecordingsRestore()
    try:
        target.mkdir(parents=True, exist_ok=True)
        root_fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise OutputError(f"cannot open {target}: {exc.strerror}") from exc
    dirs = DirCache(root_fd, create=True)
    try:
        for entry in entries:
            try:
                _one(reader, dirs, entry)
            except _UNREADABLE as exc:
                result.failed.append(f"{entry.get('path')}: {exc}")
                continue
            except OSError as exc:
                raise OutputError(f"cannot write {target}/{entry['path']}: {exc.strerror}") from exc
            result.files += 1
            result.bytes += int(entry.get("size", 0))
    finally:
        dirs.close()
    if result.failed and not result.files:
        raise IntegrityError(f"no recording could be restored intact: {result.failed[0]}")
    return result


def _one(reader: BlobReader, dirs: DirCache, entry: dict[str, Any]) -> None:
    parts = [node_name({"name": p}) for p in str(entry["path"]).split("/")]  # no escape
    parent, name = "/".join(parts[:-1]), parts[-1]
    temporary = f".sealbox-partial-{secrets.token_hex(6)}"
    with dirs.dir(parent) as parent_fd:
        fd = os.open(temporary, _FLAGS, 0o600, dir_fd=parent_fd)
        try:
            hasher = blake3.blake3()
            for blob in entry.get("blobs", []):
                data = reader.read(bytes.fromhex(blob))
                hasher.update(data)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            if hasher.hexdigest() != entry.get("digest"):
                raise CorruptFileError("content differs from the recorded digest")
            mtime = int(entry.get("mtime_ns", 0))
            os.utime(fd, ns=(mtime, mtime))
            try:  # rename never follows a symlink at the name: it replaces it
                os.rename(temporary, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
            except OSError as exc:
                if exc.errno not in (errno.EISDIR, errno.EEXIST, errno.ENOTEMPTY):
                    raise
                clear(parent_fd, name)
                os.rename(temporary, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=parent_fd)
            raise
        finally:
            os.close(fd)
