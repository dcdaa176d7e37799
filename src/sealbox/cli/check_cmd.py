"""``sealbox check [--read-data (--identity F | --share F ...)] [--destination NAME]``"""

from __future__ import annotations

from pathlib import Path

import click

from sealbox.alerts.report import integrity_failed
from sealbox.cli.common import config_option, json_option, load, print_json
from sealbox.cli.keyed import KeyArgs, key_options
from sealbox.cli.repo_cmd import print_check_report, read_data_fraction
from sealbox.destinations.repos import open_product_repo_to_read
from sealbox.errors import IntegrityError, NotFoundError
from sealbox.repo.blobs import BlobReader
from sealbox.repo.check import run_check
from sealbox.repo.locks import Lock


@click.command("check")
@click.option(
    "--read-data", is_flag=True, help="Decrypt and verify every blob (needs the master key)."
)
@click.option("--read-data-subset", help="Like --read-data on a random N% of the packs, e.g. 10%.")
@click.option(
    "--destination", help="Only this destination (default: those of [system] and [recordings])."
)
@key_options
@config_option
@json_option
@click.pass_context
def command(
    ctx: click.Context,
    read_data: bool,
    read_data_subset: str | None,
    destination: str | None,
    key: KeyArgs,
    config_path: Path | None,
    as_json: bool,
) -> None:
    """Check the integrity of the product's repositories (structure; with a key, every byte)."""

    config = load(ctx, config_path)
    subset = read_data_fraction(read_data_subset)
    read_data = read_data or subset is not None
    unlocked = key.unlock(required=read_data)
    names = (
        [destination]
        if destination
        else sorted({p.destination for p in (config.system, config.recordings) if p is not None})
    )
    reports = {}
    for name in names:
        try:
            repo = open_product_repo_to_read(
                config, name, unlocked.identities if unlocked else None
            )
        except NotFoundError:
            continue
        reader = BlobReader(repo, repo.load_index(), unlocked.identities) if unlocked else None
        with Lock(repo.backend, exclusive=False, purpose="check"):
            reports[name] = run_check(repo, reader=reader, read_data=read_data, subset=subset)
    if as_json:
        print_json({name: report.to_dict() for name, report in reports.items()})
    else:
        for name, report in reports.items():
            print_check_report(report, read_data, prefix=f"{name}: ")
    failed = [n for n, r in reports.items() if not r.ok]

    for name in failed:
        errors = reports[name].errors
        integrity_failed(config, name, f"{len(errors)} error(s), first: {errors[0]}", False)
    if failed:
        raise IntegrityError(f"check found errors at {', '.join(failed)}")
