"""``sealbox recordings verify``: the chain of recordings intact at the destination."""

from __future__ import annotations

from pathlib import Path

import click

from sealbox.cli.common import config_option, console, json_option, load, print_json
from sealbox.cli.keyed import KeyArgs, key_options
from sealbox.errors import IntegrityError
from sealbox.usecases import recordings_verify


@click.group("recordings")
def group() -> None:
    """Session recordings: verify the chain at the destination."""


@group.command("verify")
@click.option("--destination", help="Destination name (default: [recordings] destination).")
@click.option(
    "--read-data",
    is_flag=True,
    help="Also decrypt every recording and compare digests (needs the key).",
)
@key_options
@config_option
@json_option
@click.pass_context
def verify(
    ctx: click.Context,
    destination: str | None,
    read_data: bool,
    key: KeyArgs,
    config_path: Path | None,
    as_json: bool,
) -> None:
    """Detect recordings altered, removed or reordered, and a rolled-back manifest."""

    config = load(ctx, config_path)
    unlocked = key.unlock(required=read_data)
    # The signers to accept: this appliance's own (its keystore) and whatever the sheets or
    # --signer pin; a fresh machine with none of them refuses unless --unverified.
    trust = key.trust(unlocked, config.appliance.state_dir)
    report = recordings_verify.run(config, unlocked, trust, destination, read_data)
    if as_json:
        print_json(report.to_dict())
    else:
        for error in report.errors:
            console.print(f"error: {error}", markup=False)
        what = (
            "content decrypted and compared"
            if unlocked and read_data
            else "chain, signatures and stored data"
        )
        console.print(
            f"{report.recordings:,} recordings in {report.batches} batches ({what}):"
            f" {'intact' if report.ok else f'{len(report.errors)} problem(s)'};"
            f" manifest at #{report.last_seq}",
            markup=False,
        )
    if not report.ok:
        raise IntegrityError(f"recordings verify found {len(report.errors)} problem(s)")
