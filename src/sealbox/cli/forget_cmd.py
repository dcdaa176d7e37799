"""``sealbox forget [--dry-run]``: each kind's retention policy, then prune."""

from __future__ import annotations

from pathlib import Path

import click

from sealbox.cli.common import config_option, console, json_option, load, print_json
from sealbox.usecases import forget


@click.command("forget")
@click.option("--dry-run", is_flag=True, help="Say what would be removed; change nothing.")
@config_option
@json_option
@click.pass_context
def command(ctx: click.Context, dry_run: bool, config_path: Path | None, as_json: bool) -> None:
    """Apply the retention of secrets, system and recordings backups; reclaim space."""
    report = forget.run(load(ctx, config_path), dry_run=dry_run).to_json()
    if as_json:
        print_json(report)
        return
    for key, value in report.items():
        if key == "dry_run":
            continue
        if isinstance(value, dict) and "forgotten" in value:
            if value.get("skipped"):
                console.print(
                    f"{key}: skipped, the destination is append-only (the storage host runs"
                    " `sealbox repo forget --prune` with its admin token)",
                    markup=False,
                )
                continue
            kept = value.get("kept")
            kept_text = (
                f"kept {len(kept) if isinstance(kept, list) else kept}, "
                if kept is not None
                else ""
            )
            console.print(
                f"{key}: {kept_text}{'would forget' if dry_run else 'forgot'} {len(value['forgotten'])}",
                markup=False,
            )
            why = value.get("why")
            for name, reason in sorted(why.items()) if isinstance(why, dict) else []:
                moved = "forgotten" if name in value["forgotten"] else "kept"
                console.print(f"  {name[:40]}: {moved}, {reason}", markup=False)
        elif isinstance(value, dict):
            console.print(
                f"{key}: {value['packs_deleted']} pack(s) deleted, {value['packs_repacked']} repacked,"
                f" {value['bytes_freed']:,} bytes {'to free' if dry_run else 'freed'}",
                markup=False,
            )
