"""The appliance's local catalog of recordings already stored: what makes a run incremental
without reading the destination (one SQLite file per repository in ``state_dir``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sealbox.recordings.manifest import GENESIS

__all__ = ["Catalog"]


class Catalog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.db = sqlite3.connect(path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS recordings (path TEXT PRIMARY KEY, size INTEGER,"
            " mtime_ns INTEGER, seq INTEGER)"
        )
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        self.db.commit()

    def known(self) -> dict[str, tuple[int, int]]:
        """path -> (size, mtime_ns) of every recording stored."""
        return {
            p: (s, m) for p, s, m in self.db.execute("SELECT path, size, mtime_ns FROM recordings")
        }

    def head(self) -> tuple[int, str]:
        """(last sequence number, chain head) this appliance published."""
        rows = dict(self.db.execute("SELECT key, value FROM meta"))
        return int(rows.get("last_seq", 0)), rows.get("head", GENESIS)

    def add(self, rows: list[tuple[str, int, int, int]], last_seq: int, head: str) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO recordings VALUES (?, ?, ?, ?)", rows)
            self.db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [("last_seq", str(last_seq)), ("head", head)],
            )

    def close(self) -> None:
        self.db.close()
