"""``sealbox snapshots [--kind system|recordings] [--destination NAME]``"""

from __future__ import annotations

from pathlib import Path

import click

from sealbox.cli.common import config_option, console, json_option, load, print_json
from sealbox.cli.repo_cmd import rejected_dict, snapshot_dict, snapshot_line
from sealbox.destinations.repos import open_product_repo
from sealbox.errors import NotFoundError


@click.command("snapshots")
@click.option("--kind", type=click.Choice(["system", "recordings"]), help="Only this kind.")
@click.option("--destination", help="Only this destination.")
@config_option
@json_option
@click.pass_context
def command(
    ctx: click.Context,
    kind: str | None,
    destination: str | None,
    config_path: Path | None,
    as_json: bool,
) -> None:
    """List the snapshots of the product's backups (no key needed)."""

    config = load(ctx, config_path)
    names = (
        [destination]
        if destination
        else sorted(
            {part.destination for part in (config.system, config.recordings) if part is not None}
        )
    )
    rows = []
    for name in names:
        if name not in config.destinations:
            raise click.BadParameter(f"no destination named {name!r}", param_hint="--destination")
        try:
            repo, _ = open_product_repo(config, name, [], create=False)
        except NotFoundError:
            continue  # nothing backed up there yet
        snaps, rejected = repo.scan_snapshots()
        rows += [
            {**snapshot_dict(s), "destination": name} for s in snaps if not kind or s.kind == kind
        ]
        rows += [
            {**rejected_dict(r), "destination": name}
            for r in rejected
            if not kind or r.snapshot is None or r.snapshot.kind == kind
        ]
    if as_json:
        print_json(rows)
        return
    for row in rows:
        console.print(snapshot_line(row, row["destination"]), markup=False)
    bad = sum(1 for row in rows if row["status"] == "rejected")
    console.print(
        f"{len(rows) - bad} snapshot(s)" + (f", {bad} rejected" if bad else ""), markup=False
    )
