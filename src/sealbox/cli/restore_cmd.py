"""``sealbox restore system SNAPSHOT --target DIR ...``, ``restore recordings ...`` and
``restore report SNAPSHOT`` (what went stale since a snapshot)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click
from rich.table import Table

from sealbox.alerts.report import restore_run
from sealbox.cli.common import (
    config_option,
    console,
    fail_if_not_intact,
    json_option,
    load,
    print_json,
    warn,
)
from sealbox.cli.keyed import KeyArgs, key_options
from sealbox.cli.progress import bytes_progress
from sealbox.cli.repo_cmd import privilege_options, restored_line
from sealbox.config.models import Config
from sealbox.crypto.trust import Trust
from sealbox.destinations.repos import destination_of
from sealbox.errors import OutputError, SealboxError
from sealbox.keys.material import Unlocked
from sealbox.repo.repository import Snapshot
from sealbox.repo.restore import RestoreOptions
from sealbox.usecases import recordings_restore, restore_report, system_restore
from sealbox.usecases.restore_report import StaleReport


@click.group("restore")
def group() -> None:
    """Restore from the product's backups."""


@group.command("system")
@click.argument("snapshot")
@click.option(
    "--target",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory to rebuild the files into.",
)
@click.option(
    "--include", "includes", multiple=True, help="Only paths matching this glob (repeatable)."
)
@click.option("--databases", is_flag=True, help="Load the dumps back into the configured servers.")
@click.option(
    "--database-files", is_flag=True, help="Write the dumps as files into TARGET/.sealbox/."
)
@click.option(
    "--database",
    "only",
    multiple=True,
    help="Only this database (name, file or label; repeatable).",
)
@click.option("--replace", is_flag=True, help="Overwrite databases that exist.")
@click.option("--dry-run", is_flag=True, help="Show the plan; change nothing.")
@click.option("--destination", help="Destination name (default: [system] destination).")
@privilege_options
@key_options
@config_option
@json_option
@click.pass_context
def system(
    ctx: click.Context,
    snapshot: str,
    target: Path,
    includes: tuple[str, ...],
    databases: bool,
    database_files: bool,
    only: tuple[str, ...],
    replace: bool,
    dry_run: bool,
    destination: str | None,
    owners: bool,
    special: bool,
    key: KeyArgs,
    config_path: Path | None,
    as_json: bool,
) -> None:
    """Rebuild files and databases from a system snapshot (an id prefix, or "latest")."""

    config = load(ctx, config_path)
    unlocked = key.require()
    trust = key.trust(unlocked, config.appliance.state_dir)
    with restore_run(
        config,
        "system",
        destination_of(config, "system", destination),
        snapshot,
        str(target),
        enabled=not dry_run,
    ):
        restore = system_restore.plan(
            config,
            snapshot,
            target,
            unlocked,
            includes=list(includes) or None,
            databases=databases,
            database_files=database_files or bool(only and not databases),
            only=list(only) or None,
            replace=replace,
            destination=destination,
            trust=trust,
        )
        for note in restore.repo.notes:
            warn(note)
        if not restore.files.snapshot.verified:
            warn(
                f"snapshot {restore.files.snapshot.id[:12]} is NOT verified: no pinned key signed it"
                " (--unverified)"
            )
        info = restore.describe()
        if not as_json:
            console.print(
                f"Plan: snapshot {info['snapshot'][:12]} ({info['time'][:19]}) into {target}",
                markup=False,
            )
            console.print(f"  files      {info['files']:,} ({info['bytes']:,} bytes)", markup=False)
            for db in info["databases"]:
                console.print(
                    f"  database   {db['label']} ({db['bytes']:,} bytes): {db['action']}",
                    markup=False,
                )
            console.print(
                f"  space      {info['bytes']:,} bytes needed, {info['free']:,} free", markup=False
            )
            inv = info["inventory"]
            if inv:
                console.print(
                    f"  made on    {inv.get('os', '?')}, {inv.get('packages', 0)} Debian packages,"
                    f" sealbox {inv.get('sealbox_version', '?')}",
                    markup=False,
                )
        if info["bytes"] > info["free"]:
            raise OutputError(
                f"not enough space in {target}: the restore needs {info['bytes']:,} bytes,"
                f" {info['free']:,} are free"
            )
        if dry_run:
            if as_json:
                print_json({**info, "dry_run": True})
            return
        total = info["bytes"] + sum(db["bytes"] for db in info["databases"])
        with bytes_progress("restore", total, not as_json) as bar:
            result = system_restore.run(
                restore,
                on_bytes=lambda n: bar.advance(n),
                options=RestoreOptions(owners=owners, special=special),
            )
        for message in result.warnings:
            warn(message)
        stale = _stale_summary(config, restore.files.snapshot, unlocked, trust)
        if as_json:
            print_json(
                {
                    **info,
                    "stale": stale.to_dict() if isinstance(stale, StaleReport) else None,
                    "restored_files": result.files,
                    "restored_bytes": result.bytes,
                    "failed": result.failed,
                    "verified": True,
                    "complete": not result.failed,
                    "skipped": result.skipped,
                    "seconds": round(result.seconds, 3),
                }
            )
        else:
            loaded = sum(1 for db in info["databases"] if db["action"] == "load")
            console.print(
                "R"
                + restored_line(
                    result.files, info["files"], result.failed, True, f" ({result.bytes:,} bytes)"
                )[1:]
                + (f"; loaded {loaded} database(s)" if loaded else ""),
                markup=False,
            )
            _print_stale(stale, restore.files.snapshot.id)
        fail_if_not_intact(result.failed, "item(s)", as_json)


def _stale_summary(
    config: Config, snap: Snapshot, unlocked: Unlocked, trust: Trust
) -> StaleReport | str | None:
    """What went stale since the snapshot (never fails the restore: a reason instead)."""
    if config.secrets is None:
        return None
    try:
        return restore_report.report_for(config, snap, unlocked, trust)
    except (SealboxError, ValueError) as exc:  # the files are restored: say why, never crash
        return str(exc)


def _print_stale(stale: StaleReport | str | None, snapshot: str) -> None:
    if stale is None:
        return
    if isinstance(stale, str):
        warn(f"cannot say which credentials changed since the snapshot: {stale}")
        return
    for message in stale.warnings:
        warn(message)
    if not stale.items:
        console.print("No credential changed since the snapshot.", markup=False)
        return
    console.print(
        f"{len(stale.items)} credential(s) changed since the snapshot: on this restored appliance"
        f" they are stale (`sealbox restore report {snapshot[:12]}` lists them):",
        markup=False,
    )
    for item in stale.items[:10]:
        console.print(f"  {item.updated}  {item.id}  {item.name or ''}", markup=False)
    if len(stale.items) > 10:
        console.print(f"  ... and {len(stale.items) - 10} more", markup=False)


@group.command("report")
@click.argument("snapshot")
@click.option("--destination", help="Destination name (default: [system] destination).")
@key_options
@config_option
@json_option
@click.pass_context
def report(
    ctx: click.Context,
    snapshot: str,
    destination: str | None,
    key: KeyArgs,
    config_path: Path | None,
    as_json: bool,
) -> None:
    """The credentials changed since system SNAPSHOT (an id prefix, or "latest"), from the newest
    secrets backup: its signed change list (no key needed), or, with the custodians' key, the
    backup itself (names, hosts and users too; never a secret)."""
    config = load(ctx, config_path)
    unlocked = key.unlock(required=False)
    trust = key.trust(unlocked, config.appliance.state_dir)
    found = restore_report.report(config, snapshot, unlocked, trust, destination=destination)
    if as_json:
        print_json(found.to_dict())
        return
    for message in found.warnings:
        warn(message)
    console.print(
        f"Snapshot {found.snapshot[:12]} ({found.snapshot_time[:19]}); newest secrets backup"
        f" {found.backup} (from its {found.source}): {len(found.items)} of {found.total}"
        " credential(s) changed since",
        markup=False,
    )
    if found.items:
        table = Table(box=None, pad_edge=False)
        for column in ("changed", "id", "type", "name", "host", "user"):
            table.add_column(column)
        for item in found.items:
            table.add_row(
                item.updated,
                item.id,
                item.type or "",
                item.name or "",
                item.host or "",
                item.username or "",
            )
        console.print(table)
    if found.undated:
        console.print(
            f"{len(found.undated)} item(s) carry no change time (their source does not say):"
            " check them by hand",
            markup=False,
        )


@group.command("recordings")
@click.option("--session", help="The session id of one recording.")
@click.option(
    "--since", type=click.DateTime(), help="Recordings that ended at or after this time (UTC)."
)
@click.option(
    "--until", type=click.DateTime(), help="Recordings that ended at or before this time (UTC)."
)
@click.option("--target", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--destination", help="Destination name (default: [recordings] destination).")
@key_options
@config_option
@json_option
@click.pass_context
def recordings(
    ctx: click.Context,
    session: str | None,
    since: datetime | None,
    until: datetime | None,
    target: Path,
    destination: str | None,
    key: KeyArgs,
    config_path: Path | None,
    as_json: bool,
) -> None:
    """Restore recordings by session or time range; each is checked against its recorded digest."""

    if session is None and since is None and until is None:
        raise click.UsageError("choose recordings with --session ID or --since/--until")
    config = load(ctx, config_path)
    unlocked = key.require()
    outcome = recordings_restore.run(
        config,
        unlocked,
        key.trust(unlocked, config.appliance.state_dir),
        target,
        session=session,
        since=since,
        until=until,
        destination=destination,
        warn=warn,
    )
    chosen, result = outcome.chosen, outcome.result
    if as_json:
        print_json(
            {
                "restored": result.files,
                "bytes": result.bytes,
                "failed": result.failed,
                "recordings": [e["path"] for e in chosen],
            }
        )
    elif result.failed:
        console.print(
            f"Restored {result.files} of {len(chosen)} recording(s), {result.bytes:,} bytes,"
            f" into {target}; {len(result.failed)} FAILED",
            markup=False,
        )
    else:
        console.print(
            f"Restored {result.files} recording(s), {result.bytes:,} bytes, into {target};"
            " each matched its recorded digest",
            markup=False,
        )
    fail_if_not_intact(result.failed, "recording(s)", as_json)
