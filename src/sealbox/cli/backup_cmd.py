"""``sealbox backup secrets | system``."""

from __future__ import annotations

from pathlib import Path

import click

from sealbox.alerts.report import backup_run
from sealbox.cli.common import config_option, console, json_option, load, print_json, warn
from sealbox.cli.progress import backup_progress
from sealbox.destinations.repos import destination_of
from sealbox.usecases import recordings_backup as store
from sealbox.usecases import secrets_backup, system_backup


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
    with backup_run(config, "secrets", destination_of(config, "secrets", destination)) as run:
        result = secrets_backup.run(config, destination=destination)
        run.fields.update(bytes=result.size, files=result.total, snapshot=result.name)
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


@group.command("system")
@click.option("--destination", help="Destination name (default: [system] destination).")
@config_option
@json_option
@click.pass_context
def system(
    ctx: click.Context, destination: str | None, config_path: Path | None, as_json: bool
) -> None:
    """Back up settings, software, audit records and live database dumps."""

    config = load(ctx, config_path)
    with (
        backup_run(config, "system", destination_of(config, "system", destination)) as run,
        backup_progress("system backup", not as_json) as progress,
    ):
        result = system_backup.run(config, destination=destination, progress=progress)
        snap = result.backup.snapshot
        run.fields.update(bytes=result.backup.bytes_added, files=snap.files, snapshot=snap.id)
        run.sizing_warning = result.sizing_warning
    for message in result.warnings:
        warn(message)
    snap = result.backup.snapshot
    if as_json:
        print_json(
            {
                "snapshot": snap.id,
                "time": snap.time,
                "kind": snap.kind,
                "paths": snap.paths,
                "size": snap.size,
                "files": snap.files,
                "files_new": result.backup.files_new,
                "bytes_added": result.backup.bytes_added,
                "databases": result.databases,
                "destination": result.destination,
                "warnings": result.warnings,
                "seconds": round(result.backup.seconds, 3),
            }
        )
        return
    console.print(
        f"System snapshot {snap.id[:12]}: {snap.files:,} files, {snap.size:,} bytes,"
        f" {len(result.databases)} database dump(s); added {result.backup.bytes_added:,} bytes"
        f" at {result.destination} in {result.backup.seconds:.2f} s",
        markup=False,
    )


@group.command("recordings")
@click.option("--destination", help="Destination name (default: [recordings] destination).")
@config_option
@json_option
@click.pass_context
def recordings(
    ctx: click.Context, destination: str | None, config_path: Path | None, as_json: bool
) -> None:
    """Store new, finished session recordings and extend the signed manifest chain."""

    config = load(ctx, config_path)
    with backup_run(config, "recordings", destination_of(config, "recordings", destination)) as run:
        result = store.run(config, destination=destination)
        run.fields.update(
            bytes=result.bytes,
            files=result.stored,
            snapshot=result.backup.snapshot.id if result.backup else None,
        )
    for message in result.warnings:
        warn(message)
    for path in result.changed:
        warn(
            f"{path}: a recording already stored has changed at the source; stored again as a new entry"
        )
    if as_json:
        print_json(
            {
                "stored": result.stored,
                "bytes": result.bytes,
                "seen": result.seen,
                "waiting": result.waiting,
                "changed": result.changed,
                "last_seq": result.last_seq,
                "head": result.head,
                "snapshot": result.backup.snapshot.id if result.backup else None,
                "warnings": result.warnings,
                "seconds": {k: round(v, 3) for k, v in result.seconds.items()},
            }
        )
        return
    console.print(
        f"Recordings: {result.stored} new stored ({result.bytes:,} bytes), {result.seen:,} seen,"
        f" {len(result.waiting)} still being written; manifest at #{result.last_seq}",
        markup=False,
    )
    for reason in result.waiting[:10]:
        console.print(f"  later: {reason}", markup=False)
