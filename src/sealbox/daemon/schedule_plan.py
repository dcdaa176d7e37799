"""When each job runs next (pure). The catch-up rule: a job whose next slot after its last start
is already past (the daemon was down, or the machine asleep) runs once now, however many slots it
missed; a backup that never ran here runs at start."""

from __future__ import annotations

from datetime import datetime

from sealbox.daemon.jobs import Job
from sealbox.schedule import next_run

__all__ = ["first_due", "next_due"]


def first_due(job: Job, last_started: datetime | None, now: datetime) -> tuple[datetime, str]:
    """(when, trigger) of a job's first run after the daemon starts."""
    if last_started is None:
        if job.catch_up_never_run:
            return now, "catch-up"
        return next_run(job.schedule, now), "schedule"
    missed = next_run(job.schedule, last_started)
    if missed <= now:
        return now, "catch-up"
    return missed, "schedule"


def next_due(job: Job, started: datetime, now: datetime) -> datetime:
    """After a run that started at ``started``: its next slot, or now's next slot if a long run
    overran several (those are not made up: one run covers them)."""
    return next_run(job.schedule, max(started, now))
