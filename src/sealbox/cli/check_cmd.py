"""``sealbox check [--read-data (--identity F | --share F ...)] [--destination NAME]``"""

from __future__ import annotations

from pathlib import Path

import click

from sealbox.cli.common import config_option, json_option, load, print_json
from sealbox.cli.repo_cmd import key_options, print_check_report, read_data_fraction, unlock


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
    identity: Path | None,
    shares: tuple[Path, ...],
    passphrase_flag: bool,
    passphrase_file: Path | None,
    config_path: Path | None,
    as_json: bool,
) -> None:
    """Check the integrity of the product's repositories (structure; with a key, every byte)."""
    from sealbox.cli.progress import check_progress
    from sealbox.errors import IntegrityError, NotFoundError
    from sealbox.product_repo import open_product_repo_to_read
    from sealbox.repo.blobs import BlobReader
    from sealbox.repo.check import run_check
    from sealbox.repo.locks import Lock

    config = load(ctx, config_path)
    subset = read_data_fraction(read_data_subset)
    read_data = read_data or subset is not None
    unlocked = unlock(identity, shares, passphrase_flag, passphrase_file, required=read_data)
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
        with (
            Lock(repo.backend, exclusive=False, purpose="check"),
            check_progress(repo, read_data and reader is not None, not as_json) as bar,
        ):
            reports[name] = run_check(
                repo, reader=reader, read_data=read_data, subset=subset, progress=bar
            )
    if as_json:
        print_json({name: report.to_dict() for name, report in reports.items()})
    else:
        for name, report in reports.items():
            print_check_report(report, read_data, prefix=f"{name}: ")
    failed = [n for n, r in reports.items() if not r.ok]
    from sealbox.alerts.report import integrity_failed

    for name in failed:
        errors = reports[name].errors
        integrity_failed(config, name, f"{len(errors)} error(s), first: {errors[0]}", False)
    if failed:
        raise IntegrityError(f"check found errors at {', '.join(failed)}")
