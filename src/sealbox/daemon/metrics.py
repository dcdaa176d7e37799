"""Prometheus text exposition (format 0.0.4) of the daemon's state (pure rendering).

Names follow Prometheus conventions: seconds, bytes, ``_total`` for counters, a ``kind`` label
for the three backups (and ``probe``, ``check``), ``destination`` for destinations.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["Metric", "render"]


@dataclass
class Metric:
    name: str
    help: str
    type: str  # gauge | counter
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)

    def add(self, value: float | None, **labels: str) -> None:
        if value is not None:
            self.samples.append((labels, float(value)))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if value != value:  # NaN
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def render(metrics: Iterable[Metric]) -> str:
    lines: list[str] = []
    for m in metrics:
        lines.append(f"# HELP {m.name} {m.help}")
        lines.append(f"# TYPE {m.name} {m.type}")
        for labels, value in m.samples:
            text = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
            lines.append(
                f"{m.name}{{{text}}} {_number(value)}" if text else f"{m.name} {_number(value)}"
            )
    return "\n".join(lines) + "\n"
