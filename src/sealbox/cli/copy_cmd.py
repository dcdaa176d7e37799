"""``sealbox copy [--to NAME] [--limit-rate BYTES]``: run the configured [[copies]] now."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from sealbox.cli.common import config_option, console, json_option, load, print_json, warn
from sealbox.errors import IntegrityError
from sealbox.usecases import copy


@click.command("copy")
@click.option("--to", "to", help="Only the copies to this destination.")
@click.option(
    "--limit-rate",
    type=click.IntRange(min=1024),
    help="Bytes per second at most (default: each copy's rate_limit).",
)
@config_option
@json_option
@click.pass_context
def command(
    ctx: click.Context,
    to: str | None,
    limit_rate: int | None,
    config_path: Path | None,
    as_json: bool,
) -> None:
    """Copy what is new to the second destinations: verbatim, verified, resumable."""
    results = copy.run(load(ctx, config_path), to, limit_rate)
    if as_json:
        print_json([asdict(r) for r in results])
    else:
        for r in results:
            for reason in r.skipped:
                warn(reason)
            console.print(
                f"{r.source} -> {r.target}: {r.objects:,} object(s), {r.bytes:,} bytes copied,"
                f" {r.present:,} already there ({r.seconds:.1f} s)",
                markup=False,
            )
    refused = [s for r in results for s in r.skipped]
    if refused:
        raise IntegrityError(f"{len(refused)} object(s) failed verification and were not copied")
