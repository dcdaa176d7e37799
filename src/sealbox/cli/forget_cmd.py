"""``sealbox forget [--dry-run]``: each kind's retention policy, then prune."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from sealbox.config.models import Config
    from sealbox.repo.repository import Repository

from sealbox.backends.base import append_only
from sealbox.cli.common import config_option, console, json_option, load, print_json
from sealbox.product_repo import destination_backend


@click.command("forget")
@click.option("--dry-run", is_flag=True, help="Say what would be removed; change nothing.")
@config_option
@json_option
@click.pass_context
def command(ctx: click.Context, dry_run: bool, config_path: Path | None, as_json: bool) -> None:
    """Apply the retention of secrets, system and recordings backups; reclaim space."""
    from sealbox import secrets_backup
    from sealbox.errors import NotFoundError
    from sealbox.product_repo import open_product_repo
    from sealbox.repo.forget import apply_policy, forget_snapshots, prune

    config = load(ctx, config_path)
    report: dict[str, object] = {"dry_run": dry_run}
    now = datetime.now(UTC)
    if config.secrets is not None:
        backend = destination_backend(config, config.secrets.destination)
        if append_only(backend):
            report["secrets"] = {"kept": None, "forgotten": [], "skipped": "append-only"}
        elif dry_run:
            names = secrets_backup.list_backups(backend, config.appliance.name)
            report["secrets"] = {"kept": len(names), "forgotten": []}
        else:
            newest = (secrets_backup.list_backups(backend, config.appliance.name) or [""])[0]
            deleted = secrets_backup.apply_retention(
                backend,
                config.appliance.name,
                config.secrets.keep_last,
                config.secrets.keep_within,
                now,
                protect=newest,
            )
            report["secrets"] = {"forgotten": deleted}
    by_destination: dict[str, list[tuple[str, object]]] = {}
    for kind in ("system", "recordings"):
        part = getattr(config, kind)
        if part is not None:
            by_destination.setdefault(part.destination, []).append((kind, part.retention))
    for name, kinds in by_destination.items():
        try:
            repo, _ = open_product_repo(config, name, [], create=False)
        except NotFoundError:
            continue
        if append_only(repo.backend):
            # The appliance cannot delete there (that is the point); the storage host runs
            # `sealbox repo forget ... --prune` with its admin token.
            for kind, _ in kinds:
                report[kind] = {"kept": None, "forgotten": [], "skipped": "append-only"}
            continue
        snapshots = repo.snapshots()
        for kind, policy in kinds:
            keep, drop = apply_policy([s for s in snapshots if s.kind == kind], policy, now)  # type: ignore[arg-type]
            if not dry_run:
                forget_snapshots(repo, drop)
                if kind == "recordings" and drop:
                    _note_retention(config, repo, {s.id for s in drop})
            report[kind] = {"kept": [s.id for s in keep], "forgotten": [s.id for s in drop]}
        pruned = prune(repo, dry_run=dry_run)
        report[f"prune:{name}"] = pruned.__dict__
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
        elif isinstance(value, dict):
            console.print(
                f"{key}: {value['packs_deleted']} pack(s) deleted, {value['packs_repacked']} repacked,"
                f" {value['bytes_freed']:,} bytes {'to free' if dry_run else 'freed'}",
                markup=False,
            )


def _note_retention(config: Config, repo: Repository, dropped: set[str]) -> None:
    """Sign which recordings the policy removed, so `recordings verify` tells them from tampering."""
    from sealbox.keystore import Keystore
    from sealbox.recordings.manifest import GENESIS
    from sealbox.recordings.verify import entries_of, retention_record

    removed = [int(e["seq"]) for e in entries_of(repo) if e.get("snapshot") in dropped]
    retention_record(repo, removed, GENESIS, Keystore(config.appliance.state_dir).signing_key())
