"""Pure schedule helpers: cron expression validation and duration strings ("30d", "5y").

The daemon issue adds next-run computation on top of :func:`parse_cron`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["CronSpec", "interval", "next_run", "parse_cron", "parse_duration"]

_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)
_NAMES = {
    "month": {
        m: i
        for i, m in enumerate(
            ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
        )
    },
    "day of week": {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])},
}
_MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}


@dataclass(frozen=True)
class CronSpec:
    """The allowed values of each of the five cron fields."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday; 7 is folded into 0
    day_restricted: bool
    weekday_restricted: bool


def _value(token: str, name: str, low: int, high: int) -> int:
    token = token.lower()
    if token in _NAMES.get(name, {}):
        return _NAMES[name][token]
    if not token.isdigit():
        raise ValueError(f"{name}: {token!r} is not a number")
    value = int(token)
    if not low <= value <= high:
        raise ValueError(f"{name}: {value} is outside {low}-{high}")
    return value


def _field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"{name}: bad step {step_text!r}")
            step = int(step_text)
        if part == "*":
            start, end = low, high
        elif "-" in part:
            a, b = part.split("-", 1)
            start, end = _value(a, name, low, high), _value(b, name, low, high)
            if start > end:
                raise ValueError(f"{name}: range {part!r} runs backwards")
        else:
            start = _value(part, name, low, high)
            end = high if step > 1 else start
        values.update(range(start, end + 1, step))
    return frozenset(values)


def parse_cron(expression: str) -> CronSpec:
    """Parse a five-field cron expression (or a macro like ``@daily``); raise ValueError."""
    text = _MACROS.get(expression.strip().lower(), expression.strip())
    parts = text.split()
    if len(parts) != 5:
        raise ValueError(f"a cron expression has 5 fields, got {len(parts)}: {expression!r}")
    sets = [_field(p, n, lo, hi) for p, (n, lo, hi) in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(d % 7 for d in sets[4])
    return CronSpec(sets[0], sets[1], sets[2], sets[3], weekdays, parts[2] != "*", parts[4] != "*")


_DURATION = re.compile(r"(\d+)\s*([smhdwy])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


def parse_duration(text: str) -> timedelta:
    """``"90m"``, ``"12h"``, ``"30d"``, ``"2w"``, ``"5y"`` or combinations (``"1y6m"`` is minutes!)."""
    compact = text.strip().lower().replace(" ", "")
    if not compact or _DURATION.sub("", compact):
        raise ValueError(f"not a duration: {text!r} (use e.g. 12h, 30d, 2w, 5y)")
    seconds = sum(int(n) * _UNIT[u] for n, u in _DURATION.findall(compact))
    return timedelta(seconds=seconds)


def _day_matches(spec: CronSpec, when: datetime) -> bool:
    dom = when.day in spec.days
    dow = (when.isoweekday() % 7) in spec.weekdays
    if spec.day_restricted and spec.weekday_restricted:
        return dom or dow  # cron's rule: either restricted field may match
    return dom and dow


def next_run(expression: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` (to the minute) that the cron expression fires."""
    spec = parse_cron(expression)
    when = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    limit = when + timedelta(days=366 * 5)
    while when < limit:
        if when.month not in spec.months:
            month = when.month + 1
            when = when.replace(
                year=when.year + (month > 12), month=(month - 1) % 12 + 1, day=1, hour=0, minute=0
            )
            continue
        if not _day_matches(spec, when):
            when = (when + timedelta(days=1)).replace(hour=0, minute=0)
            continue
        if when.hour not in spec.hours:
            when = (when + timedelta(hours=1)).replace(minute=0)
            continue
        if when.minute not in spec.minutes:
            when += timedelta(minutes=1)
            continue
        return when
    raise ValueError(f"cron expression {expression!r} never fires")


def interval(expression: str, around: datetime) -> timedelta:
    """The gap between two consecutive runs near ``around`` (what "overdue" is measured in)."""
    first = next_run(expression, around)
    return next_run(expression, first) - first
