"""SVG charts drawn on the server (pure: data in, markup out; no JavaScript, no CDN).

Every text that reaches the markup goes through :func:`html.escape`. Charts carry
``data-points`` (how many points they draw) and ``<title>`` tooltips, so a test or a screen
reader can read them.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

__all__ = ["COLOURS", "PALETTE", "capacity_bar", "human_bytes", "line_chart"]

PALETTE = ("#2563eb", "#16a34a", "#d97706", "#dc2626", "#7c3aed")
# The same colour for a job on every chart.
COLOURS = {
    "secrets": "#2563eb",
    "system": "#16a34a",
    "recordings": "#d97706",
    "probe": "#7c3aed",
    "check": "#6b7280",
}


def human_bytes(value: float | None) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return "-"


def _time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%m-%d %H:%M")


def line_chart(
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    title: str,
    y_format: Callable[[float], str] = lambda v: f"{v:,.1f}",
    width: int = 640,
    height: int = 220,
    css_id: str = "",
) -> str:
    """Lines (with dots) over time; x = Unix seconds, one colour per series, a legend."""
    pad_l, pad_r, pad_t, pad_b = 70, 44, 28, 44
    points = [p for values in series.values() for p in values]
    esc = html.escape
    head = (
        f'<svg class="chart" id="{esc(css_id)}" data-points="{len(points)}" role="img"'
        f' viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{esc(title)}</title>"
        f'<text x="{pad_l}" y="16" class="chart-title">{esc(title)}</text>'
    )
    if not points:
        return (
            head + f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" class="muted">'
            "no data yet</text></svg>"
        )
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = 0.0, max(ys) or 1.0
    if x1 == x0:
        x0, x1 = x0 - 1800, x1 + 1800
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b

    def sx(x: float) -> float:
        return pad_l + (x - x0) / (x1 - x0) * plot_w

    def sy(y: float) -> float:
        return pad_t + plot_h - (y - y0) / (y1 - y0) * plot_h

    parts = [head]
    for i in range(5):  # horizontal grid and y labels
        value = y0 + (y1 - y0) * i / 4
        y = sy(value)
        parts.append(
            f'<line x1="{pad_l}" x2="{width - pad_r}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{pad_l - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">'
            f"{esc(y_format(value))}</text>"
        )
    for x, anchor in ((x0, "start"), ((x0 + x1) / 2, "middle"), (x1, "end")):
        parts.append(
            f'<text x="{sx(x):.1f}" y="{height - 24}" text-anchor="{anchor}" class="axis">'
            f"{esc(_time(x))}</text>"
        )
    for index, (name, values) in enumerate(sorted(series.items())):
        colour = COLOURS.get(name, PALETTE[index % len(PALETTE)])
        ordered = sorted(values)
        if len(ordered) > 1:
            path = " ".join(
                f"{'M' if n == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}"
                for n, (x, y) in enumerate(ordered)
            )
            parts.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y in ordered:
            parts.append(
                f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}">'
                f"<title>{esc(name)} {esc(_time(x))}: {esc(y_format(y))}</title></circle>"
            )
        lx = pad_l + 10 + index * 120
        parts.append(
            f'<rect x="{lx}" y="{height - 8}" width="10" height="4" fill="{colour}"/>'
            f'<text x="{lx + 14}" y="{height - 3}" class="legend">{esc(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def capacity_bar(
    used: int | None, available: int | None, target: int | None, *, title: str, width: int = 640
) -> str:
    """Capacity (free + used by Sealbox) as a bar, what Sealbox uses inside it, and a marker at
    the 150%-of-var target; red when capacity falls short of the target."""
    esc = html.escape
    height = 70
    head = (
        f'<svg class="chart capacity" role="img" viewBox="0 0 {width} {height}"'
        f' xmlns="http://www.w3.org/2000/svg"><title>{esc(title)}</title>'
    )
    if not available or target is None:
        return head + '<text x="8" y="36" class="muted">capacity unknown</text></svg>'
    scale = max(available, target) or 1
    full = width - 20

    def w(v: float) -> float:
        return max(1.0, v / scale * full)

    short = available < target
    parts = [
        head,
        f'<rect x="10" y="18" width="{w(available):.1f}" height="22" rx="3"'
        f' class="{"cap-short" if short else "cap-ok"}"><title>capacity'
        f" {esc(human_bytes(available))}</title></rect>",
        f'<rect x="10" y="18" width="{w(used or 0):.1f}" height="22" rx="3" class="cap-used">'
        f"<title>used by Sealbox {esc(human_bytes(used))}</title></rect>",
        f'<line x1="{10 + w(target):.1f}" x2="{10 + w(target):.1f}" y1="10" y2="48"'
        f' class="cap-target"/>',
        f'<text x="10" y="62" class="axis">used {esc(human_bytes(used))} of'
        f" {esc(human_bytes(available))}; 150% target {esc(human_bytes(target))}"
        f"{' (SHORT)' if short else ''}</text>",
        "</svg>",
    ]
    return "".join(parts)
