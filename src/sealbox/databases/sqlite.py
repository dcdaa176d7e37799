"""SQLite: the online backup API (a consistent copy while writers go on), into memory, streamed
into the repository; loaded back as the database file at its path (atomically)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from sealbox.config.models import DatabaseConfig
from sealbox.errors import ConfigError, OutputError, SourceError
from sealbox.repo.backup import Stream, bytes_stream
from sealbox.util.redact import mask_url

__all__ = ["SQLite"]


class SQLite:
    def __init__(self, config: DatabaseConfig, position: int) -> None:
        self.config, self.position = config, position
        url = config.url
        if url.startswith("sqlite:///"):
            url = url.removeprefix("sqlite:///")  # sqlite:////abs/path -> /abs/path
        if not url.startswith("/"):
            raise ConfigError(
                f"sqlite database {mask_url(config.url)!r}: give an absolute path"
                " (sqlite:////path/app.db)"
            )
        self.path = Path(url)

    @property
    def label(self) -> str:
        return f"sqlite {self.path}"

    @property
    def file_name(self) -> str:
        return f"db-{self.position:02d}-sqlite-{self.path.name}"

    def check(self) -> None:
        if not self.path.is_file():
            raise SourceError(f"{self.label}: no such database file")

    def dump(self) -> Stream:
        def image() -> bytes:
            # The backup API copies a consistent state even while the appliance writes; the copy
            # lives in memory and is streamed into the repository: no plaintext file on disk.
            try:
                source = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
                memory = sqlite3.connect(":memory:")
                try:
                    source.backup(memory)
                    return memory.serialize()
                finally:
                    source.close()
                    memory.close()
            except sqlite3.Error as exc:
                raise SourceError(f"{self.label}: {exc}") from exc

        return bytes_stream(self.file_name, image)

    def exists(self) -> bool:
        return self.path.exists()

    def load(self, data: Iterable[bytes], replace: bool) -> None:
        if self.path.exists() and not replace:
            raise OutputError(f"{self.label} exists: add --replace to overwrite it")
        write_file(self.path, data)


def write_file(path: Path, data: Iterable[bytes]) -> None:
    """Write atomically: temporary name in the same directory, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.sealbox-restore")
    try:
        with open(tmp, "wb") as handle:
            for chunk in data:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {exc.strerror}") from exc
