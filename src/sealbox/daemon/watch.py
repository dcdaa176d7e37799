"""Fresh secrets: the daemon polls each source's change marker (:mod:`sealbox.sources.watch`)
every ``[secrets] watch_seconds`` and, after a change, runs the secrets backup soon:

- once the sources have been quiet for a whole poll (a burst of rotations makes one backup),
- but never later than ``max_lag`` after the first change not yet backed up,
- and never sooner than ``min_interval`` after the previous secrets run started.

The schedule stays a floor. A change counts as backed up once a secrets run that started after it
succeeds. The state (``state_dir/watch.json``: the first change waiting, the newest change
backed up, the last poll and its error) feeds ``status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sealbox.config.models import Config
from sealbox.errors import SealboxError
from sealbox.schedule import parse_duration
from sealbox.sources.watch import WATCH_STATE, markers
from sealbox.state.files import write_json

__all__ = ["ChangePlan", "Watcher", "plan_run"]

log = logging.getLogger("sealbox.daemon")


@dataclass(frozen=True)
class ChangePlan:
    """When to run for the changes waiting (Unix times)."""

    first_change: float
    last_change: float


def plan_run(
    plan: ChangePlan, last_start: float | None, poll: float, max_lag: float, min_interval: float
) -> float:
    """When the change-triggered run should start: once a whole poll saw no further change (two
    periods after the last change seen: the next poll can still postpone it), within
    ``max_lag`` of the first change, never within ``min_interval`` of the last start (which wins
    over max_lag: the config keeps min_interval <= max_lag)."""
    quiet = plan.last_change + 2 * poll
    when = min(quiet, plan.first_change + max_lag)
    if last_start is not None:
        when = max(when, last_start + min_interval)
    return when


def _iso(when: float | None) -> str | None:
    if when is None:
        return None
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Watcher:
    """One per daemon. ``due`` asks for the secrets job to start by then; ``last_start`` is
    when the newest secrets run started, ``last_success`` when the newest successful one did."""

    def __init__(
        self,
        config: Callable[[], Config],
        due: Callable[[float], None],
        last_start: Callable[[], float | None],
        last_success: Callable[[], float | None],
    ) -> None:
        self.config, self.due = config, due
        self.last_start, self.last_success = last_start, last_success
        self.seen: dict[str, str] | None = None
        self.pending: ChangePlan | None = None
        self.backed_up: float | None = None  # the newest change a successful run covers
        self.error: str | None = None
        self.polled: float | None = None

    def _state(self, state_dir: Path) -> None:
        doc: dict[str, Any] = {
            "watching": True,
            "polled": _iso(self.polled),
            "waiting_since": _iso(self.pending.first_change) if self.pending else None,
            "newest_change_backed_up": _iso(self.backed_up),
            "error": self.error,
        }
        write_json(state_dir / WATCH_STATE, doc)

    def read(self) -> dict[str, str] | str:
        """The sources' markers now, or why they cannot be read (runs in a worker thread)."""
        section = self.config().secrets
        if section is None:
            return {}
        try:
            return markers(list(section.sources))
        except SealboxError as exc:
            return str(exc)

    def observe(self, current: dict[str, str] | str, now: float | None = None) -> float | None:
        """Take one reading (on the daemon's loop: it reads the history and sets ``due``); the
        start time asked for, if a change waits."""
        config = self.config()
        section = config.secrets
        if section is None or not section.watch_seconds:
            return None
        now = now if now is not None else time.time()
        if isinstance(current, str):
            if self.error != current:
                log.warning("secrets watch: %s", current)
            self.error, current = current, self.seen or {}
        else:
            self.error = None
        self.polled = now
        if self.seen is not None and current != self.seen:
            first = self.pending.first_change if self.pending else now
            self.pending = ChangePlan(first, now)
        self.seen = current
        started, succeeded = self.last_start(), self.last_success()
        if self.pending and succeeded is not None and succeeded > self.pending.last_change:
            self.backed_up, self.pending = self.pending.last_change, None
        wanted = None
        if self.pending is not None and (started is None or started <= self.pending.last_change):
            wanted = plan_run(
                self.pending,
                started,
                float(section.watch_seconds),
                parse_duration(section.max_lag).total_seconds(),
                parse_duration(section.min_interval).total_seconds(),
            )
            self.due(wanted)
        self._state(config.appliance.state_dir)
        return wanted

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            section = self.config().secrets
            watching = section is not None and bool(section.watch_seconds)
            if watching:
                try:
                    self.observe(await asyncio.to_thread(self.read))
                except Exception as exc:  # never let the watch take the daemon down
                    log.warning("secrets watch: %r", exc)
            period = float(section.watch_seconds or 30) if section is not None else 30.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), period)
