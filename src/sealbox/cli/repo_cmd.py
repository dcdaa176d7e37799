"""``sealbox repo init|backup|snapshots|restore|check|forget``: plumbing on any repository URL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sealbox.backends import open_backend
from sealbox.cli.common import (
    console,
    fail_if_not_intact,
    json_option,
    print_json,
    warn,
)
from sealbox.cli.keyed import KeyArgs, key_options
from sealbox.cli.progress import backup_progress, bytes_progress, check_progress
from sealbox.config.models import Retention
from sealbox.errors import IntegrityError
from sealbox.repo.backup import run_backup
from sealbox.repo.blobs import BlobReader
from sealbox.repo.check import run_check
from sealbox.repo.forget import decide, forget_snapshots, prune
from sealbox.repo.heal import HealReport, refuse_if_damaged_root, scrub
from sealbox.repo.holds import held_snapshots
from sealbox.repo.locks import Lock, reading_lock
from sealbox.repo.parity import ParityPolicy, parse_policy
from sealbox.repo.repository import Rejected, Repository, default_state_dir
from sealbox.repo.restore import RestoreOptions, plan_restore, run_restore
from sealbox.usecases.forget import session_snapshots

if TYPE_CHECKING:
    from sealbox.keys.material import Unlocked
    from sealbox.repo.check import CheckReport
    from sealbox.repo.restore import RestoreOptions

repo_argument = click.argument("repo")


def privilege_options(func: Any) -> Any:
    """``--owners`` and ``--special``: what a restore leaves out unless asked (format.md §16)."""
    func = click.option(
        "--special",
        is_flag=True,
        help="Also restore setuid/setgid bits, device nodes and file capabilities.",
    )(func)
    return click.option(
        "--owners",
        is_flag=True,
        help="Also restore owners (uid/gid), ACLs and security labels (needs root).",
    )(func)


def state_dir(ctx: click.Context) -> Path:
    value = ctx.find_object(dict)
    return Path(value["state_dir"]) if value and value.get("state_dir") else default_state_dir()


@click.group("repo")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Local state: writer keys, files cache (default $SEALBOX_STATE_DIR, else ~/.local/state/sealbox).",
)
@click.pass_context
def group(ctx: click.Context, state_dir: Path | None) -> None:
    """Plumbing: any paths, any repository URL."""
    ctx.obj = {"state_dir": state_dir}


def parity_of(value: str) -> ParityPolicy | None:
    try:
        return parse_policy(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--parity") from None


parity_option = click.option(
    "--parity",
    default="6.25%",
    show_default=True,
    help="Parity written beside each object (N%, K+M or off; format.md 9a).",
)


@group.command("init")
@repo_argument
@click.option(
    "--recipient", "recipients", multiple=True, required=True, help="age1... (repeat for several)."
)
@parity_option
@json_option
@click.pass_context
def init(
    ctx: click.Context, repo: str, recipients: tuple[str, ...], parity: str, as_json: bool
) -> None:
    """Create a repository sealed to the recipients."""
    repository = Repository.init(
        open_backend(repo), list(recipients), state_dir(ctx), parity=parity_of(parity)
    )
    if as_json:
        print_json({"id": repository.config.id, "url": repository.backend.display})
    else:
        console.print(
            f"Created repository {repository.config.id} at {repository.backend.display}",
            markup=False,
        )


@group.command("backup")
@repo_argument
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--exclude", "excludes", multiple=True, help="Glob of names or paths to leave out (repeatable)."
)
@click.option("--tag", "tags", multiple=True, help="Tag the snapshot (repeatable).")
@parity_option
@json_option
@click.pass_context
def backup(
    ctx: click.Context,
    repo: str,
    paths: tuple[Path, ...],
    excludes: tuple[str, ...],
    tags: tuple[str, ...],
    parity: str,
    as_json: bool,
) -> None:
    """Back up PATHS into a new snapshot."""

    policy = parity_of(parity)
    repository = Repository.open_writer(open_backend(repo), state_dir(ctx))
    repository.backend.policy = policy
    with backup_progress("backup", not as_json) as progress:
        result = run_backup(
            repository,
            list(paths),
            state_dir=state_dir(ctx),
            excludes=list(excludes),
            tags=list(tags),
            progress=progress,
        )
    snap = result.snapshot
    for message in result.warnings:
        warn(message)
    summary = {
        "snapshot": snap.id,
        "time": snap.time,
        "paths": snap.paths,
        "files": snap.files,
        "dirs": snap.dirs,
        "size": snap.size,
        "files_new": result.files_new,
        "files_unchanged": result.files_unchanged,
        "bytes_read": result.bytes_read,
        "blobs_added": result.blobs_added,
        "bytes_added": result.bytes_added,
        "packs": result.packs,
        "recovered_packs": result.recovered_packs,
        "warnings": result.warnings,
        "seconds": round(result.seconds, 3),
    }
    if as_json:
        print_json(summary)
        return
    console.print(
        f"snapshot {snap.id[:12]} saved: {snap.files} files, {snap.size:,} bytes"
        f" ({result.files_new} new or changed, {result.files_unchanged} unchanged);"
        f" added {result.bytes_added:,} bytes in {result.packs} pack(s), {result.seconds:.2f} s",
        markup=False,
    )


def snapshot_dict(s: Any) -> dict[str, Any]:
    return {
        "id": s.id,
        "short_id": s.id[:12],
        "time": s.time,
        "kind": s.kind,
        "hostname": s.hostname,
        "paths": s.paths,
        "tags": s.tags,
        "size": s.size,
        "files": s.files,
        "extra": s.extra,
        "status": "verified" if s.verified else "unverified",
    }


def rejected_dict(r: Rejected) -> dict[str, Any]:
    """A snapshot object that is not used, with what is known of it and why."""
    known = snapshot_dict(r.snapshot) if r.snapshot is not None else {}
    return {
        **{k: None for k in ("time", "kind", "hostname", "paths", "size", "files")},
        **known,
        "id": r.name,
        "short_id": r.name[:12],
        "status": "rejected",
        "reason": r.reason,
    }


def snapshot_line(row: dict[str, Any], where: str = "") -> str:
    if row["status"] == "rejected":
        return f"{row['short_id']:<12}  REJECTED  {row['reason']}"
    flag = "" if row["status"] == "verified" else "  UNVERIFIED"
    return (
        f"{row['short_id']}  {row['time'][:19]}  {row['kind']:<10} {row['files']:>8} files"
        f" {row['size']:>15,} B  {where or ', '.join(row['paths'])}{flag}"
    )


@group.command("snapshots")
@repo_argument
@json_option
@click.pass_context
def snapshots(ctx: click.Context, repo: str, as_json: bool) -> None:
    """List snapshots (no key needed); forged, damaged or unpinned ones are marked REJECTED and
    never used (not for `latest`, not for restore)."""
    repository = Repository.open_writer(open_backend(repo), state_dir(ctx))
    snaps, rejected = repository.scan_snapshots()
    rows = [snapshot_dict(s) for s in snaps] + [rejected_dict(r) for r in rejected]
    if as_json:
        print_json(rows)
        return
    for row in rows:
        console.print(snapshot_line(row), markup=False)
    extra = f", {len(rejected)} rejected" if rejected else ""
    console.print(f"{len(snaps)} snapshot(s){extra}", markup=False)


def open_for_reading(repo: str, key: KeyArgs, unlocked: Unlocked, local_state: Path) -> Repository:
    repository = Repository.open(
        open_backend(repo), unlocked.identities, key.trust(unlocked, local_state)
    )
    for note in repository.notes:
        warn(note)
    if not repository.config_verified:
        warn("this repository's signer is not pinned: its origin is UNVERIFIED (--unverified)")
    return repository


@group.command("restore")
@repo_argument
@click.argument("snapshot")
@click.argument("target", type=click.Path(file_okay=False, path_type=Path))
@key_options
@click.option(
    "--include", "includes", multiple=True, help="Only paths matching this glob (repeatable)."
)
@click.option("--dry-run", is_flag=True, help="Show the plan; write nothing.")
@click.option("--no-verify", is_flag=True, help="Skip reading written files back.")
@privilege_options
@json_option
def restore(
    repo: str,
    snapshot: str,
    target: Path,
    key: KeyArgs,
    includes: tuple[str, ...],
    dry_run: bool,
    no_verify: bool,
    owners: bool,
    special: bool,
    as_json: bool,
) -> None:
    """Restore SNAPSHOT (an id prefix or "latest": the newest authentic one) into TARGET."""

    unlocked = key.require()
    repository = open_for_reading(repo, key, unlocked, state_dir(click.get_current_context()))
    options = RestoreOptions(owners=owners, special=special)
    with reading_lock(repository.backend, "restore", warn):
        _restore(
            repository, unlocked, snapshot, target, includes, dry_run, no_verify, options, as_json
        )


def _restore(
    repository: Repository,
    unlocked: Unlocked,
    snapshot: str,
    target: Path,
    includes: tuple[str, ...],
    dry_run: bool,
    no_verify: bool,
    options: RestoreOptions,
    as_json: bool,
) -> None:

    index = repository.load_index()
    reader = BlobReader(repository, index, unlocked.identities)
    snap = repository.find_snapshot(snapshot)
    if not snap.verified:
        warn(f"snapshot {snap.id[:12]} is NOT verified: no pinned key signed it (--unverified)")
    plan = plan_restore(repository, index, reader, snap, target, list(includes) or None)
    plan_info = {
        "snapshot": snap.id,
        "files": plan.files,
        "bytes": plan.bytes,
        "free": plan.free,
        "target": str(target),
        "damaged": plan.damaged_trees,
    }
    if dry_run:
        if as_json:
            print_json(plan_info)
        else:
            console.print(
                f"would restore {plan.files} files, {plan.bytes:,} bytes into {target}"
                f" ({plan.free:,} bytes free)",
                markup=False,
            )
        fail_if_not_intact(plan.damaged_trees, "directory listing(s)", as_json)
        return
    if not as_json:
        console.print(
            f"restoring {plan.files} files, {plan.bytes:,} bytes from {snap.id[:12]} into {target}",
            markup=False,
        )
    with bytes_progress("restore", plan.bytes, not as_json) as bar:
        result = run_restore(
            repository,
            index,
            reader,
            plan,
            target,
            verify=not no_verify,
            on_bytes=lambda n: bar.advance(n),
            options=options,
        )
    for message in result.warnings:
        warn(message)
    if as_json:
        print_json(
            {
                **plan_info,
                "restored_files": result.files,
                "restored_bytes": result.bytes,
                "failed": result.failed,
                "warnings": result.warnings,
                "seconds": round(result.seconds, 3),
                "verified": not no_verify,
                "complete": not result.failed,
                "skipped": result.skipped,
            }
        )
    else:
        console.print(
            restored_line(
                result.files,
                plan.files,
                result.failed,
                not no_verify,
                f", {result.bytes:,} bytes in {result.seconds:.2f} s",
            ),
            markup=False,
        )
    fail_if_not_intact(result.failed, "item(s)", as_json)


def restored_line(files: int, planned: int, failed: list[str], verified: bool, detail: str) -> str:
    """ "restored N files ..." that says "verified" only of files that were written and checked;
    ``detail`` (bytes, time) follows the count."""
    if not failed:
        tail = ", every file read back and verified" if verified else ""
        return f"restored {files:,} files{detail}{tail}"
    checked = f"; the {files:,} written were read back and verified" if verified and files else ""
    return f"restored {files:,} of {planned:,} files{detail}{checked}; {len(failed)} item(s) FAILED"


def read_data_fraction(value: str | None) -> float | None:
    """``--read-data-subset`` ("10%") as a fraction; None when not given."""
    if not value:
        return None
    try:
        return float(value.rstrip("%")) / 100
    except ValueError:
        raise click.BadParameter(
            "use a percentage like 10%", param_hint="--read-data-subset"
        ) from None


def print_check_report(report: CheckReport, read_data: bool, prefix: str = "") -> None:
    """A check report for people; ``prefix`` names the repository when there are several."""
    for error in report.errors:
        console.print(f"{prefix}error: {error}", markup=False)
    for snap, files in report.affected_snapshots.items():
        console.print(
            f"{prefix}snapshot {snap[:12]} is damaged; affected: "
            + "; ".join(files[:20])
            + (f" (+{len(files) - 20} more)" if len(files) > 20 else ""),
            markup=False,
        )
    what = f"{report.blobs_checked} blobs decrypted and verified" if read_data else "structure only"
    console.print(
        f"{prefix}{report.snapshots} snapshots, {report.packs} packs checked ({what}): "
        + ("no errors" if report.ok else f"{len(report.errors)} error(s)"),
        markup=False,
    )


def print_heal_report(report: HealReport, prefix: str = "") -> None:
    """What a repair did, object by object, then one line of counts."""
    for verdict in report.of("repaired"):
        console.print(f"{prefix}repaired {verdict.name} (from its parity, verified)", markup=False)
    for verdict in report.parity("rewritten"):
        console.print(f"{prefix}parity of {verdict.name} rewritten", markup=False)
    for verdict in report.of("repairable"):
        why = f" ({verdict.reason})" if verdict.reason else ""
        console.print(f"{prefix}{verdict.name}: damaged, repairable{why}", markup=False)
    for verdict in report.parity("damaged"):
        if verdict.state == "intact":
            console.print(
                f"{prefix}parity of {verdict.name}: damaged (object intact)", markup=False
            )
    for verdict in report.of("lost"):
        console.print(f"{prefix}LOST {verdict.name}: {verdict.reason}", markup=False)
    console.print(
        f"{prefix}repair: {report.checked} objects checked, {len(report.of('repaired'))} repaired,"
        f" {len(report.of('repairable'))} repairable, {len(report.parity('rewritten'))} parity"
        f" rewritten, {len(report.of('lost'))} lost",
        markup=False,
    )


repair_option = click.option(
    "--repair",
    is_flag=True,
    help="First repair what parity allows (no key needed), then check.",
)


@group.command("check")
@repo_argument
@click.option("--read-data", is_flag=True, help="Decrypt and verify every blob (needs the key).")
@click.option("--read-data-subset", help="Like --read-data on a random N% of the packs, e.g. 10%.")
@repair_option
@key_options
@json_option
@click.pass_context
def check(
    ctx: click.Context,
    repo: str,
    read_data: bool,
    read_data_subset: str | None,
    repair: bool,
    key: KeyArgs,
    as_json: bool,
) -> None:
    """Check the repository's integrity (structure without a key; data with one)."""

    subset = read_data_fraction(read_data_subset)
    read_data = read_data or subset is not None
    healed = None
    if repair:  # before opening: a damaged key object or config is repaired first
        backend = open_backend(repo)
        with Lock(
            backend, exclusive=False, purpose="repair"
        ):  # prune waits: no repair of the deleted
            healed = scrub(backend, repair=True)
        if not as_json:
            print_heal_report(healed)
    unlocked = key.unlock(required=read_data)
    if not repair:
        refuse_if_damaged_root(open_backend(repo))
    if unlocked is not None:
        repository = open_for_reading(repo, key, unlocked, state_dir(ctx))
    else:
        repository = Repository.open_writer(open_backend(repo), state_dir(ctx))
    reader = (
        BlobReader(repository, repository.load_index(), unlocked.identities) if unlocked else None
    )
    with (
        Lock(repository.backend, exclusive=False, purpose="check"),
        check_progress(repository, read_data and reader is not None, not as_json) as bar,
    ):
        report = run_check(
            repository, reader=reader, read_data=read_data, subset=subset, progress=bar
        )
    if as_json:
        report.repair = healed
        print_json(report.to_dict())
    else:
        print_check_report(report, read_data)
    if not report.ok:
        raise IntegrityError(f"check found {len(report.errors)} error(s)")


@group.command("forget")
@repo_argument
@click.option("--keep-last", type=int)
@click.option("--keep-hourly", type=int)
@click.option("--keep-daily", type=int)
@click.option("--keep-weekly", type=int)
@click.option("--keep-monthly", type=int)
@click.option("--keep-yearly", type=int)
@click.option("--keep-within", help="Keep everything younger than this (e.g. 30d, 5y).")
@click.option("--prune", "do_prune", is_flag=True, help="Then reclaim the space nobody needs.")
@click.option("--dry-run", is_flag=True, help="Say what would go; change nothing.")
@json_option
@click.pass_context
def forget(
    ctx: click.Context,
    repo: str,
    keep_last: int | None,
    keep_hourly: int | None,
    keep_daily: int | None,
    keep_weekly: int | None,
    keep_monthly: int | None,
    keep_yearly: int | None,
    keep_within: str | None,
    do_prune: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Apply a retention policy, then optionally prune."""

    try:
        policy = Retention(
            keep_last=keep_last,
            keep_hourly=keep_hourly,
            keep_daily=keep_daily,
            keep_weekly=keep_weekly,
            keep_monthly=keep_monthly,
            keep_yearly=keep_yearly,
            keep_within=keep_within,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc).splitlines()[-1]) from None
    if not any(policy.model_dump().values()):
        raise click.UsageError("give at least one --keep-* option")
    repository = Repository.open_writer(open_backend(repo), state_dir(ctx))
    held = held_snapshots(repository, session_snapshots(repository))  # legal holds win
    decision = decide(repository.snapshots(), policy, datetime.now(UTC), held)
    keep, drop = decision.keep, decision.forget
    if not dry_run:
        forget_snapshots(repository, drop)
    pruned = prune(repository, dry_run=dry_run) if do_prune else None
    if as_json:
        print_json(
            {
                "keep": [s.id for s in keep],
                "forget": [s.id for s in drop],
                "why": decision.why,
                "dry_run": dry_run,
                "prune": pruned.__dict__ if pruned else None,
            }
        )
        return
    verb = "would forget" if dry_run else "forgot"
    console.print(f"kept {len(keep)} snapshot(s), {verb} {len(drop)}", markup=False)
    if pruned:
        console.print(
            f"prune: {pruned.packs_deleted} pack(s) deleted, {pruned.packs_repacked} repacked,"
            f" {pruned.bytes_freed:,} bytes freed",
            markup=False,
        )


__all__ = ["group"]
