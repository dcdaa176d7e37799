"""``sealbox probe [--destination NAME]``: one probe of each destination, with timing.

Each result feeds the alerts (unreachable once when it starts, reminders, recovered once); a full
probe also looks for overdue backups and a missing master key, as the daemon's probes do."""

from __future__ import annotations

from pathlib import Path

import click

from sealbox.alerts import report
from sealbox.cli.common import config_option, console, json_option, load, print_json
from sealbox.destinations.probe import probe_all
from sealbox.errors import ConfigError, DestinationError
from sealbox.usecases import drill


@click.command("probe")
@click.option("--destination", help="Only this destination.")
@config_option
@json_option
@click.pass_context
def command(
    ctx: click.Context, destination: str | None, config_path: Path | None, as_json: bool
) -> None:
    """Write, read back and delete a canary at each destination."""

    config = load(ctx, config_path)
    if destination and destination not in config.destinations:
        raise ConfigError(f"no destination named {destination!r} in the config")
    results = probe_all(config, destination)

    for r in results:
        report.probe_outcome(config, r.destination, r.url, r.ok, r.error, r.last_ok)
    if destination is None:
        report.health_checks(config)
        if config.drills is not None:  # [drills] on the appliance: alert when not proven
            drill.alert_unproven(config)
    if as_json:
        print_json([r.to_dict() for r in results])
    else:
        for r in results:
            if r.ok:
                free = f", {r.free:,} bytes free" if r.free is not None else ""
                fs = f" ({r.filesystem})" if r.filesystem else ""
                console.print(
                    f"{r.destination}: ok{fs} write {r.write_ms:.0f} ms, read {r.read_ms:.0f} ms,"
                    f" delete {r.delete_ms:.0f} ms{free}",
                    markup=False,
                )
                for warning in r.warnings:
                    console.print(f"{r.destination}: warning: {warning}", markup=False)
            else:
                console.print(f"{r.destination}: UNREACHABLE: {r.error}", markup=False)
    failed = [r.destination for r in results if not r.ok]
    if failed:
        raise DestinationError(f"{len(failed)} destination(s) unreachable: {', '.join(failed)}")
