"""``sealbox hold add SNAPSHOT|--session ID [--reason TEXT] | remove HOLD | list``."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from sealbox.cli.common import config_option, console, json_option, load, print_json
from sealbox.usecases import holds
from sealbox.usecases.holds import DestinationHold


@click.group("hold")
def group() -> None:
    """Legal holds: snapshots and recordings sessions that no retention rule deletes."""


def _doc(item: DestinationHold) -> dict[str, object]:
    return {"destination": item.destination, **asdict(item.hold), "legal_hold_objects": item.locked}


def _line(item: DestinationHold) -> str:
    hold = item.hold
    what = f"snapshot {hold.snapshot[:12]}" if hold.snapshot else f"session {hold.session}"
    signed = "" if hold.verified else " (UNVERIFIED signer)"
    return f"{hold.id[:12]}  {hold.time}  {item.destination}: {what}  {hold.reason}{signed}"


@group.command("add")
@click.argument("snapshot", required=False)
@click.option("--session", help="Hold every recording of this session instead.")
@click.option("--reason", default="", help="Why (a case number, say); stored sealed.")
@config_option
@json_option
@click.pass_context
def add(
    ctx: click.Context,
    snapshot: str | None,
    session: str | None,
    reason: str,
    config_path: Path | None,
    as_json: bool,
) -> None:
    """Hold SNAPSHOT (an id prefix) or --session ID until `sealbox hold remove`."""
    if bool(snapshot) == bool(session):
        raise click.UsageError("name a SNAPSHOT or a --session, not both")
    item = holds.add(load(ctx, config_path), reason, snapshot=snapshot, session=session)
    if as_json:
        print_json(_doc(item))
    else:
        console.print(f"Held: {_line(item)}", markup=False)
        if item.locked:
            console.print(f"{item.locked} objects under an S3 legal hold", markup=False)


@group.command("remove")
@click.argument("hold")
@click.option("--reason", default="", help="Why it is released.")
@config_option
@json_option
@click.pass_context
def remove(
    ctx: click.Context, hold: str, reason: str, config_path: Path | None, as_json: bool
) -> None:
    """Release HOLD (its id or a prefix): a signed release record, the hold stays on record."""
    item = holds.remove(load(ctx, config_path), hold, reason)
    if as_json:
        print_json(_doc(item))
    else:
        console.print(f"Released: {_line(item)}", markup=False)


@group.command("list")
@config_option
@json_option
@click.pass_context
def list_cmd(ctx: click.Context, config_path: Path | None, as_json: bool) -> None:
    """Every active hold, oldest first."""
    items = holds.list_holds(load(ctx, config_path))
    if as_json:
        print_json([_doc(i) for i in items])
        return
    for item in items:
        console.print(_line(item), markup=False)
    console.print(f"{len(items)} active hold(s)", markup=False)
