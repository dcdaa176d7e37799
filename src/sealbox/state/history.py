"""Run history in SQLite (``state_dir/history.sqlite``): one row per run of each job.

A run is inserted as ``running`` before its process starts and finished with its result; a daemon
that died meanwhile leaves ``running`` rows, which the next start marks ``interrupted`` (so the
history never claims a run that nobody is doing). WAL mode: ``sealbox status`` reads while the
daemon writes.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

__all__ = ["RESULTS", "History"]

RESULTS = ("running", "success", "failed", "interrupted")
KEEP_ROWS = 20_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    trigger TEXT NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    result TEXT NOT NULL CHECK (result IN ('running', 'success', 'failed', 'interrupted')),
    bytes INTEGER,
    files INTEGER,
    snapshot TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS runs_kind_started ON runs (kind, started);
"""


class History:
    def __init__(self, state_dir: Path, readonly: bool = False) -> None:
        self.path = state_dir / "history.sqlite"
        if readonly:
            self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None)
        else:
            state_dir.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
        self.db.row_factory = sqlite3.Row

    @classmethod
    def maybe(cls, state_dir: Path) -> History | None:
        """The history for reading, or None when no daemon ever ran here."""
        if not (state_dir / "history.sqlite").exists():
            return None
        try:
            return cls(state_dir, readonly=True)
        except sqlite3.Error:
            return None

    def close(self) -> None:
        self.db.close()

    def recover(self) -> int:
        """Mark the runs a previous daemon left ``running`` as ``interrupted``."""
        cur = self.db.execute(
            "UPDATE runs SET result = 'interrupted', ended = ?,"
            " error = COALESCE(error, 'the daemon stopped during the run')"
            " WHERE result = 'running'",
            (time.time(),),
        )
        return cur.rowcount

    def start(self, kind: str, trigger: str, when: float | None = None) -> int:
        cur = self.db.execute(
            "INSERT INTO runs (kind, trigger, started, result) VALUES (?, ?, ?, 'running')",
            (kind, trigger, when or time.time()),
        )
        return int(cur.lastrowid or 0)

    def finish(
        self,
        run_id: int,
        result: str,
        *,
        bytes_: int | None = None,
        files: int | None = None,
        snapshot: str | None = None,
        error: str | None = None,
    ) -> None:
        if result not in RESULTS[1:]:
            raise ValueError(f"not a final result: {result}")
        self.db.execute(
            "UPDATE runs SET ended = ?, result = ?, bytes = ?, files = ?, snapshot = ?, error = ?"
            " WHERE id = ?",
            (time.time(), result, bytes_, files, snapshot, error, run_id),
        )
        self.db.execute("DELETE FROM runs WHERE id <= (SELECT MAX(id) FROM runs) - ?", (KEEP_ROWS,))

    def runs(
        self,
        kind: str | None = None,
        result: str | None = None,
        since: float | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Newest first."""
        rows = self.db.execute(
            "SELECT * FROM runs WHERE (?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR result = ?2)"
            " AND (?3 IS NULL OR started >= ?3) ORDER BY id DESC LIMIT ?4",
            (kind or None, result or None, since, limit),
        ).fetchall()
        return [dict(row) for row in rows]

    def last(self, kind: str, result: str | None = None) -> dict[str, Any] | None:
        found = self.runs(kind=kind, result=result, limit=1)
        return found[0] if found else None

    def last_started(self, kind: str) -> float | None:
        row = self.db.execute("SELECT MAX(started) FROM runs WHERE kind = ?", (kind,)).fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def counts(self) -> dict[tuple[str, str], int]:
        rows = self.db.execute("SELECT kind, result, COUNT(*) FROM runs GROUP BY kind, result")
        return {(r[0], r[1]): int(r[2]) for r in rows}
