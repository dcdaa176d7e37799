"""``sealbox status [--json]``"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from sealbox.cli.common import config_option, console, json_option, load, print_json, warn
from sealbox.usecases.status import collect


def _size(value: float | None) -> str:
    if value is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return "-"


@click.command("status")
@config_option
@json_option
@click.pass_context
def command(ctx: click.Context, config_path: Path | None, as_json: bool) -> None:
    """Every kind's last success, next run, size; destination health and sizing; warnings."""

    report = collect(load(ctx, config_path))
    if as_json:
        print_json(report)
        return
    console.print(
        f"{report['appliance']}  master key {report['master_key'] or 'NOT SET'}"
        f"  (last drill {report['last_drill'] or 'never'})",
        markup=False,
    )
    daemon = report.get("daemon")
    console.print(
        f"  daemon     running (pid {daemon['pid']}) on {daemon['listen']}"
        if daemon
        else "  daemon     not running",
        markup=False,
    )
    cluster = report.get("cluster")
    if cluster:
        since = f" since {cluster['since']}" if cluster["since"] else ""
        console.print(
            f"  cluster    node {cluster['node']} is the {cluster['role']};"
            f" leader {cluster['leader'] or 'unknown'}{since} ({cluster['mode']})",
            markup=False,
        )
    for k in report["kinds"]:
        console.print(
            f"  {k['kind']:<11} {k['state']:<10} last {k['last_success'] or '-':<21}"
            f" next {k['next_run']}  {_size(k['size']):>10}  -> {k['destination']}",
            markup=False,
        )
        fresh = k.get("fresh")
        if fresh is not None:
            console.print(f"  {'':<11} {_fresh_line(fresh)}", markup=False)
        proven = k.get("proven")
        if k["kind"] != "secrets":
            console.print(f"  {'':<11} {_proven_line(proven)}", markup=False)
        for lag in k.get("copies", []):
            behind = (
                f"unreadable: {lag['error']}"
                if "error" in lag
                else f"{lag['lag_snapshots']} behind ({_size(lag['lag_bytes'])})"
            )
            console.print(
                f"  {'':<11} copy to {lag['to']}: {behind}, last copy {lag['last_copy'] or 'never'}",
                markup=False,
            )
    for s in report["sizing"]:
        days = (
            f"{s['days_to_full']:.0f} days to full"
            if s["days_to_full"] is not None
            else "no growth trend yet"
        )
        console.print(
            f"  sizing {s['destination']}: {_size(s['available_bytes'])} available for"
            f" {_size(s['target_bytes'])} needed (150% of {s['var_dir']}: {_size(s['var_bytes'])});"
            f" {days}",
            markup=False,
        )
    for key, entry in sorted(report["alerts"]["conditions"].items()):
        console.print(
            f"  alerting   {key} since {entry['since']} ({entry['count']} time(s);"
            f" last alert {entry['last_sent'] or 'none'})",
            markup=False,
        )
    for task in report.get("rotations", [])[:20]:
        console.print(
            f"  rotate     {task['id']} ({task['type']}) {task['name']}: revealed {task['revealed']}",
            markup=False,
        )
    for message in report["warnings"]:
        warn(message)


def _ago(iso: str | None) -> str:
    if not iso:
        return "never"
    when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    minutes = int((datetime.now(UTC) - when).total_seconds() // 60)
    return f"{minutes} min ago" if minutes < 120 else f"{minutes // 60} h ago"


def _fresh_line(fresh: dict[str, Any]) -> str:
    if not fresh.get("watching"):
        return "watching sources: not yet (the daemon watches them)"
    line = f"newest change backed up {_ago(fresh.get('newest_change_backed_up'))}"
    if fresh.get("waiting_since"):
        line += f"; a change waits since {_ago(fresh['waiting_since'])}"
    if fresh.get("error"):
        line += f"; watch failing: {fresh['error']}"
    return line


def _proven_line(proven: dict[str, Any] | None) -> str:
    if not proven:
        return "proven restorable: never drilled"
    when = _ago(proven.get("last_passed")) if proven.get("last_passed") else "never"
    newest = (
        ""
        if proven["result"] == "passed"
        else f"; the newest drill FAILED ({_ago(proven['time'])})"
    )
    return f"proven restorable {when}{newest}"
