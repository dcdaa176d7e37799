"""The 150% rule: the destination should hold at least 1.5 times the size of ``var_dir``.

Measured: the size of ``var_dir`` (like ``du -sx``: blocks, one filesystem, hard links once;
cached for a day, since it walks the whole tree), the destination's capacity (free bytes plus what
Sealbox already uses there) and, from the free space seen after each backup, the growth per day
and the days until the destination is full.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sealbox.backends.base import Backend
from sealbox.state.files import read_json, write_json

__all__ = [
    "RULE",
    "SizingReport",
    "forecast",
    "last_reports",
    "measure",
    "record_sample",
    "tree_size",
    "usage_samples",
    "used_bytes",
]

RULE = 1.5
VAR_CACHE_SECONDS = 24 * 3600
USED_CACHE_SECONDS = 6 * 3600
MAX_SAMPLES = 500


def tree_size(root: Path) -> int:
    """Bytes allocated below ``root`` on its own filesystem (hard links counted once)."""
    try:
        device = os.lstat(root).st_dev
    except OSError:
        return 0
    total, seen, stack = 0, set(), [str(root)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if st.st_dev != device:
                continue
            if st.st_nlink > 1 and not entry.is_dir(follow_symlinks=False):
                if (st.st_ino, st.st_dev) in seen:
                    continue
                seen.add((st.st_ino, st.st_dev))
            total += st.st_blocks * 512
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
    return total


def _state(state_dir: Path) -> dict[str, Any]:
    doc: dict[str, Any] = read_json(state_dir / "sizing.json")
    return doc


def usage_samples(state_dir: Path) -> dict[str, Any]:
    """The recorded usage samples per destination (``sizing.json``), for charts."""
    samples: dict[str, Any] = _state(state_dir).get("samples", {})
    return samples


def _save(state_dir: Path, doc: dict[str, Any]) -> None:
    write_json(state_dir / "sizing.json", doc)


def var_size(state_dir: Path, var_dir: Path, fresh: bool = False) -> int:
    doc = _state(state_dir)
    cached = doc.get("var", {})
    if (
        not fresh
        and cached.get("path") == str(var_dir)
        and time.time() - cached.get("at", 0) < VAR_CACHE_SECONDS
    ):
        return int(cached["bytes"])
    size = tree_size(var_dir)
    doc["var"] = {"path": str(var_dir), "bytes": size, "at": time.time()}
    _save(state_dir, doc)
    return size


def record_sample(state_dir: Path, destination: str, backend: Backend, added: int = 0) -> None:
    """After each backup: remember the destination's free space now (one statvfs), and count
    the bytes the backup ``added`` into the cached "used by Sealbox" figure."""
    try:
        free = backend.capacity().free
    except Exception:
        free = None
    doc = _state(state_dir)
    cached = doc.get("used", {}).get(destination)
    if added and isinstance(cached, list) and len(cached) == 2:
        cached[1] = int(cached[1]) + added
    if free is not None:
        samples = doc.setdefault("samples", {}).setdefault(destination, [])
        samples.append([time.time(), free])
        del samples[:-MAX_SAMPLES]
    _save(state_dir, doc)


def used_bytes(state_dir: Path, destination: str, backend: Backend, fresh: bool = False) -> int:
    """What Sealbox stores at the destination. Listing every object is O(objects) (millions of
    recordings make that slow, and the dashboard asks often), so the sum is kept for
    ``USED_CACHE_SECONDS``, grown by what each backup adds (:func:`record_sample`); retention's
    deletions show at the next full count."""
    doc = _state(state_dir)
    cached = doc.get("used", {}).get(destination)
    if (
        not fresh
        and isinstance(cached, list)
        and len(cached) == 2
        and time.time() - cached[0] < USED_CACHE_SECONDS
    ):
        return int(cached[1])
    used = sum(info.size for info in backend.list(""))
    doc.setdefault("used", {})[destination] = [time.time(), used]
    _save(state_dir, doc)
    return used


def forecast(
    samples: list[list[float]], now: float | None = None
) -> tuple[float | None, float | None]:
    """(bytes per day the free space shrinks by, days until it is gone) from the last 30 days."""
    now = now or time.time()
    recent = [(t, f) for t, f in samples if now - t <= 30 * 86400]
    if len(recent) < 2 or recent[-1][0] - recent[0][0] < 3600:
        return None, None
    n = len(recent)
    mean_t = sum(t for t, _ in recent) / n
    mean_f = sum(f for _, f in recent) / n
    var = sum((t - mean_t) ** 2 for t, _ in recent)
    slope = sum((t - mean_t) * (f - mean_f) for t, f in recent) / var  # bytes per second
    growth = -slope * 86400
    if growth <= 0:
        return growth, None
    return growth, recent[-1][1] / growth


@dataclass
class SizingReport:
    destination: str
    var_dir: str
    var_bytes: int
    target_bytes: int
    free_bytes: int | None
    used_bytes: int
    available_bytes: int | None
    ok: bool | None
    growth_per_day: float | None
    days_to_full: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def warning(self) -> str | None:
        if self.ok is False:
            return (
                f"destination {self.destination!r} can hold {self.available_bytes:,} bytes, below the"
                f" {RULE:.0%} of {self.var_dir} ({self.target_bytes:,} bytes) the sizing rule asks for"
            )
        if self.days_to_full is not None and self.days_to_full < 30:
            return f"destination {self.destination!r} is forecast to be full in {self.days_to_full:.0f} days"
        return None


def measure(
    state_dir: Path, var_dir: Path, destination: str, backend: Backend, fresh: bool = False
) -> SizingReport:
    var_bytes = var_size(state_dir, var_dir, fresh)
    used = used_bytes(state_dir, destination, backend, fresh)
    free = backend.capacity().free
    available = None if free is None else free + used
    growth, days = forecast(_state(state_dir).get("samples", {}).get(destination, []))
    target = int(var_bytes * RULE)
    report = SizingReport(
        destination,
        str(var_dir),
        var_bytes,
        target,
        free,
        used,
        available,
        None if available is None else available >= target,
        growth,
        days,
    )
    doc = _state(state_dir)
    doc.setdefault("reports", {})[destination] = {**report.to_dict(), "at": time.time()}
    _save(state_dir, doc)
    return report


def last_reports(state_dir: Path) -> dict[str, dict[str, Any]]:
    """The last sizing report of each destination (kept by :func:`measure`), for metrics."""
    reports: Any = _state(state_dir).get("reports", {})
    return reports if isinstance(reports, dict) else {}
