"""Find recordings that are new and finished.

The settle rule (a recording still being written is never taken half-way): a file is taken when
(1) no process on this host has it open (``/proc/*/fd``; as a non-root user only our own
processes are visible), (2) its mtime is at least ``settle_seconds`` old, and (3) its size and
mtime are the same at the end of the scan as at the start. Anything else waits for a later run.
"""

from __future__ import annotations

import fnmatch
import os
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Candidate", "ScanResult", "open_files", "scan"]


@dataclass(frozen=True)
class Candidate:
    path: str  # relative to the recordings directory
    size: int
    mtime_ns: int


def open_files(under: str) -> set[str]:
    """Paths below ``under`` that some process holds open."""
    found: set[str] = set()
    prefix = under.rstrip("/") + "/"
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return found
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith(prefix):
                found.add(target)
    return found


@dataclass
class ScanResult:
    ready: list[Candidate]
    waiting: list[str]  # left for a later run, with the reason
    changed: list[str]  # stored recordings whose file changed since (stored again as new entries)
    total: int  # recordings seen


def scan(
    root: Path,
    known: dict[str, tuple[int, int]],
    settle_seconds: int,
    excludes: list[str],
    now: float | None = None,
) -> ScanResult:
    """The new, finished recordings, without reading any file or the destination."""
    now = now or time.time()
    root_text = str(root)
    seen: list[Candidate] = []
    total = 0
    stack = [root_text]
    while stack:
        directory = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
                continue
            if not entry.is_file(follow_symlinks=False):
                continue
            if any(fnmatch.fnmatch(entry.name, p) for p in excludes):
                continue
            total += 1
            rel = entry.path[len(root_text) + 1 :]
            st = entry.stat(follow_symlinks=False)
            if known.get(rel) == (st.st_size, st.st_mtime_ns):
                continue
            seen.append(Candidate(rel, st.st_size, st.st_mtime_ns))
    if not seen:
        return ScanResult([], [], [], total)
    busy = open_files(root_text)
    ready: list[Candidate] = []
    waiting: list[str] = []
    changed: list[str] = []
    for candidate in seen:
        full = os.path.join(root_text, candidate.path)
        if full in busy:
            waiting.append(f"{candidate.path}: open by a process (still being recorded)")
            continue
        if now - candidate.mtime_ns / 1e9 < settle_seconds:
            waiting.append(f"{candidate.path}: changed less than {settle_seconds} s ago")
            continue
        try:
            st = os.stat(full, follow_symlinks=False)
        except OSError:
            continue
        if (st.st_size, st.st_mtime_ns) != (candidate.size, candidate.mtime_ns):
            waiting.append(f"{candidate.path}: changed during the scan")
            continue
        if candidate.path in known:
            changed.append(candidate.path)
        ready.append(candidate)
    return ScanResult(sorted(ready, key=lambda c: (c.mtime_ns, c.path)), waiting, changed, total)
