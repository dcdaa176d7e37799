"""``sealbox restore recordings``: chosen recordings back into a directory, verified."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import blake3

from sealbox.errors import CorruptFileError, IntegrityError, NotFoundError, OutputError
from sealbox.repo.blobs import BlobReader
from sealbox.repo.tree import node_name

__all__ = ["RecordingsRestore", "restore", "select"]


@dataclass
class RecordingsRestore:
    files: int = 0
    bytes: int = 0
    failed: list[str] = field(default_factory=list)


def _when(entry: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(entry.get("ended")).replace("Z", "+00:00"))


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
    result = RecordingsRestore()
    target.mkdir(parents=True, exist_ok=True)
    for entry in entries:
        parts = [
            node_name({"name": p}) for p in str(entry["path"]).split("/")
        ]  # no escape from target
        path = target.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        hasher = blake3.blake3()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            try:
                for blob in entry.get("blobs", []):
                    data = reader.read(bytes.fromhex(blob))
                    hasher.update(data)
                    os.write(fd, data)
            finally:
                os.close(fd)
        except CorruptFileError as exc:
            result.failed.append(f"{entry['path']}: {exc}")
            continue
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror}") from exc
        if hasher.hexdigest() != entry.get("digest"):
            result.failed.append(f"{entry['path']}: content differs from the recorded digest")
            continue
        mtime = int(entry.get("mtime_ns", 0))
        os.utime(path, ns=(mtime, mtime))
        result.files += 1
        result.bytes += int(entry.get("size", 0))
    if result.failed and not result.files:
        raise IntegrityError(f"no recording could be restored intact: {result.failed[0]}")
    return result
