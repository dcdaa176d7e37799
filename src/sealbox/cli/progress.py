"""A rich progress bar on stderr (only on a terminal, never with --json)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from sealbox.cli.common import err_console
from sealbox.repo.backup import Progress as EngineProgress

if TYPE_CHECKING:
    from sealbox.repo.backup import Progress as BackupProgress
    from sealbox.repo.repository import Repository

__all__ = ["backup_progress", "bytes_progress", "check_progress"]


class _Bar:
    def __init__(self, progress: Progress | None, task: TaskID | None) -> None:
        self.progress, self.task = progress, task
        self.files = 0

    def advance(self, nbytes: int, files: int = 0) -> None:
        self.files += files
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, advance=nbytes, files=self.files)

    def total(self, nbytes: int) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, total=nbytes)


@contextmanager
def bytes_progress(title: str, total: int | None, enabled: bool) -> Iterator[_Bar]:
    if not enabled or not sys.stderr.isatty():
        yield _Bar(None, None)
        return
    progress = Progress(
        TextColumn(f"{title} [progress.description]{{task.fields[files]}} files"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )
    with progress:
        task = progress.add_task("", total=total, files=0)
        yield _Bar(progress, task)


@contextmanager
def check_progress(
    repo: Repository, read_data: bool, enabled: bool
) -> Iterator[Callable[[int], None] | None]:
    """With ``read_data``: a callback for each blob's stored bytes, driving a bar whose total is
    the packs' size (rate and time left); without, nothing to show."""
    if not read_data or not enabled or not sys.stderr.isatty():
        yield None
        return
    total = sum(size for _, size in repo.list_packs())
    with bytes_progress("check", total, True) as bar:
        yield lambda nbytes: bar.advance(nbytes)


@contextmanager
def backup_progress(title: str, enabled: bool) -> Iterator[BackupProgress]:
    """A backup engine Progress whose counters drive a progress bar."""

    with bytes_progress(title, None, enabled) as bar:
        progress = EngineProgress()
        seen = [0, 0]
        next_at = [0.0]

        report = _ProgressFile.from_environment()

        def update(p: EngineProgress) -> None:
            # Called for every file (a million on a large tree): the bar is redrawn ten times a
            # second anyway, so its counters are brought up to date no more often than that.
            now = time.monotonic()
            if now < next_at[0]:
                return
            next_at[0] = now + 0.1
            bar.total(p.total_bytes)
            bar.advance(p.bytes - seen[0], p.files - seen[1])
            seen[0], seen[1] = p.bytes, p.files
            if report is not None:
                report.write(p)

        if bar.progress is not None or report is not None:  # nobody to tell otherwise
            progress.on_update = update
        yield progress


class _ProgressFile:
    """``SEALBOX_PROGRESS_FILE``: the daemon asks its backup jobs to report their counters
    there (JSON, replaced at most twice a second) for the dashboard's progress display."""

    def __init__(self, path: Path) -> None:
        self.path, self.last = path, 0.0

    @classmethod
    def from_environment(cls) -> _ProgressFile | None:
        value = os.environ.get("SEALBOX_PROGRESS_FILE")
        return cls(Path(value)) if value else None

    def write(self, p: BackupProgress) -> None:
        now = time.monotonic()
        if now - self.last < 0.5:
            return
        self.last = now
        doc = {
            "bytes": p.bytes,
            "total_bytes": p.total_bytes,
            "files": p.files,
            "total_files": p.total_files,
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_bytes(orjson.dumps(doc))
            os.replace(tmp, self.path)
        except OSError:
            pass  # progress is a courtesy: never fail a backup over it
