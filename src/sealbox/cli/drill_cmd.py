"""``sealbox drill system|recordings [--destination NAME] (--identity F | --share F ...)
[--scratch URL ...]``: on a recovery host, prove that the newest backup restores; a signed
receipt goes to the destination for the appliance's ``status``."""

from __future__ import annotations

from pathlib import Path

import click

from sealbox.cli.common import config_option, console, json_option, load, print_json
from sealbox.cli.keyed import KeyArgs, key_options
from sealbox.errors import IntegrityError
from sealbox.usecases import drill
from sealbox.usecases.drill import DrillOutcome


@click.group("drill")
def group() -> None:
    """Restore drills on a recovery host (never the appliance): prove the newest backup
    restores, and leave a signed receipt the appliance shows as "proven"."""


def _report(outcome: DrillOutcome, as_json: bool) -> None:
    receipt = outcome.receipt
    if as_json:
        print_json({"receipt": outcome.name, **receipt.to_dict(), "warnings": outcome.warnings})
    else:
        for warning in outcome.warnings:
            console.print(f"warning: {warning}", markup=False)
        console.print(
            f"{receipt.kind} drill of snapshot {receipt.snapshot[:12]} ({receipt.snapshot_time})"
            f" at {outcome.destination}: {receipt.result.upper()} in {receipt.seconds:.1f} s",
            markup=False,
        )
        for check in receipt.checks:
            console.print(f"  {check.result:6}  {check.name}: {check.detail}", markup=False)
        if receipt.error:
            console.print(f"  error: {receipt.error}", markup=False)
        console.print(
            f"receipt {outcome.name[:16]} written, signed by {receipt.signer}"
            " (pin it on the appliance: [drills] signers)",
            markup=False,
        )
    if receipt.result != "passed":
        raise IntegrityError(
            f"the {receipt.kind} drill failed: the newest backup does not restore as it should"
        )


@group.command("system")
@click.option("--destination", help="Drill this destination's copy (default: [system]'s).")
@click.option(
    "--scratch",
    multiple=True,
    metavar="URL",
    help="A throwaway server for the dumps (postgresql://user@host:port, mysql://user@host:port;"
    " repeatable). Without one for a kind, a temporary server is started here.",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the scratch directory is made (default: the system's temporary directory).",
)
@click.option("--keep", is_flag=True, help="Leave the restored files in place for a look.")
@key_options
@config_option
@json_option
@click.pass_context
def system(
    ctx: click.Context,
    destination: str | None,
    scratch: tuple[str, ...],
    workdir: Path | None,
    keep: bool,
    key: KeyArgs,
    config_path: Path | None,
    as_json: bool,
) -> None:
    """Restore the newest verified system snapshot, load every dump into a throwaway database
    and check its tables and rows, compare every file's digest; then write the receipt."""
    config = load(ctx, config_path)
    unlocked = key.require()
    outcome = drill.run_system(
        config,
        unlocked,
        key.trust(unlocked, None),
        destination=destination,
        scratch=list(scratch or (config.drills.scratch if config.drills else [])),
        workdir=workdir,
        keep=keep,
    )
    _report(outcome, as_json)


@group.command("recordings")
@click.option("--destination", help="Drill this destination's copy (default: [recordings]'s).")
@click.option(
    "--sample",
    type=click.IntRange(min=1),
    default=None,
    help="Recordings to restore (default [drills] sample, 20): the newest and a random spread.",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the scratch directory is made.",
)
@key_options
@config_option
@json_option
@click.pass_context
def recordings(
    ctx: click.Context,
    destination: str | None,
    sample: int | None,
    workdir: Path | None,
    key: KeyArgs,
    config_path: Path | None,
    as_json: bool,
) -> None:
    """Restore a sample of recordings from the signed manifest and check each digest; then
    write the receipt."""
    config = load(ctx, config_path)
    unlocked = key.require()
    outcome = drill.run_recordings(
        config,
        unlocked,
        key.trust(unlocked, None),
        destination=destination,
        sample=sample or (config.drills.sample if config.drills else 20),
        workdir=workdir,
    )
    _report(outcome, as_json)
