"""``sealbox check [--read-data (--identity F | --share F ...)] [--destination NAME] [--repair]``"""

from __future__ import annotations

from pathlib import Path

import click

from sealbox.cli.common import config_option, json_option, load, print_json
from sealbox.cli.keyed import KeyArgs, key_options
from sealbox.cli.progress import check_progress
from sealbox.cli.repo_cmd import (
    print_check_report,
    print_heal_report,
    read_data_fraction,
    repair_option,
)
from sealbox.errors import IntegrityError
from sealbox.usecases import check


@click.command("check")
@click.option(
    "--read-data", is_flag=True, help="Decrypt and verify every blob (needs the master key)."
)
@click.option("--read-data-subset", help="Like --read-data on a random N% of the packs, e.g. 10%.")
@click.option(
    "--destination", help="Only this destination (default: those of [system] and [recordings])."
)
@repair_option
@key_options
@config_option
@json_option
@click.pass_context
def command(
    ctx: click.Context,
    read_data: bool,
    read_data_subset: str | None,
    destination: str | None,
    repair: bool,
    key: KeyArgs,
    config_path: Path | None,
    as_json: bool,
) -> None:
    """Check the integrity of the product's repositories (structure; with a key, every byte)."""

    subset = read_data_fraction(read_data_subset)
    read_data = read_data or subset is not None
    config = load(ctx, config_path)
    reports = check.run(
        config,
        key.unlock(required=read_data),
        destination,
        read_data,
        subset,
        progress=lambda repo, reading: check_progress(repo, reading, not as_json),
        repair=repair,
    )
    if as_json:
        print_json({name: report.to_dict() for name, report in reports.items()})
    else:
        for name, report in reports.items():
            if report.repair is not None:
                print_heal_report(report.repair, prefix=f"{name}: ")
            print_check_report(report, read_data, prefix=f"{name}: ")
    failed = [n for n, r in reports.items() if not r.ok]
    if failed:
        raise IntegrityError(f"check found errors at {', '.join(failed)}")
