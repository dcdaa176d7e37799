"""``sealbox backup secrets`` (system and recordings come with the repository engine)."""

from __future__ import annotations

from pathlib import Path

import click

from sealbox import secrets_backup
from sealbox.cli.common import config_option, console, json_option, load, print_json, warn


@click.group("backup")
def group() -> None:
    """Run a backup now."""


@group.command("secrets")
@click.option("--destination", help="Destination name (default: [secrets] destination).")
@config_option
@json_option
@click.pass_context
def secrets(
    ctx: click.Context, destination: str | None, config_path: Path | None, as_json: bool
) -> None:
    """Export every secret, encrypt to the master key, sign, and store it off the appliance."""
    config = load(ctx, config_path)
    result = secrets_backup.run(config, destination=destination)
    for message in result.warnings:
        warn(message)
    if as_json:
        print_json(
            {
                "file": result.name,
                "destination": result.destination,
                "size": result.size,
                "total": result.total,
                "counts": result.counts,
                "keys": result.keys,
                "deleted": result.deleted,
                "warnings": result.warnings,
                "seconds": result.seconds,
            }
        )
        return
    counts = ", ".join(f"{n} {t}" for t, n in result.counts.items() if n)
    console.print(f"Secrets backup {result.name}: {result.total} items ({counts})", markup=False)
    console.print(
        f"  {result.size:,} bytes at {result.destination}, sealed to key "
        f"{', '.join(k['id'] for k in result.keys)}, in {result.seconds['total']:.2f} s",
        markup=False,
    )
    if result.deleted:
        console.print(f"  retention removed {len(result.deleted)} older backup(s)", markup=False)
