"""``sealbox keys ceremony | combine | drill | list``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from sealbox.breakglass import opener_html
from sealbox.cli.common import (
    config_option,
    console,
    json_option,
    load,
    passphrase_options,
    passphrase_source,
    print_json,
    warn,
)
from sealbox.crypto import sshsig
from sealbox.errors import OutputError, ShareError
from sealbox.keys import ceremony as ceremonies
from sealbox.keys.store import Keystore

share_option = click.option(
    "--share",
    "shares",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A custodian share sheet (repeat for each share of the quorum).",
)


@click.group("keys")
def group() -> None:
    """The master key: ceremony, combine, drill, list."""


@group.command("ceremony")
@click.option(
    "--shares", "total", type=click.IntRange(2, 16), required=True, help="Number of custodians (N)."
)
@click.option(
    "--threshold", type=click.IntRange(2, 16), required=True, help="Shares needed to open (M)."
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write share-01.txt .. share-NN.txt here (default: print the sheets).",
)
@passphrase_options
@config_option
@json_option
@click.pass_context
def ceremony(
    ctx: click.Context,
    total: int,
    threshold: int,
    out_dir: Path | None,
    passphrase_flag: bool,
    passphrase_file: Path | None,
    config_path: Path | None,
    as_json: bool,
) -> None:
    """Create a new master key split into M-of-N custodian shares."""
    if threshold > total:
        raise ShareError(f"--threshold {threshold} is more than --shares {total}")
    config = load(ctx, config_path)
    source = passphrase_source(passphrase_flag, passphrase_file, confirm=True)
    result = ceremonies.ceremony(
        Keystore(config.appliance.state_dir),
        appliance=config.appliance.name,
        total=total,
        threshold=threshold,
        opener_sha256=opener_html.opener_sha256(),
        passphrase=source() if source else "",
        out_dir=out_dir,
    )
    if as_json:
        print_json(
            {
                "key_id": result.key_id,
                "recipient": result.recipient,
                "created": result.created,
                "threshold": threshold,
                "shares": total,
                "files": [str(f) for f in result.files],
                # Without --out the sheets exist nowhere else: they must be in the output.
                **({} if out_dir else {"sheets": result.sheets}),
            }
        )
        return
    if out_dir is None:
        for sheet in result.sheets:
            click.echo(sheet + "\n" + "-" * 72)
        warn(
            "the share sheets were printed: clear this terminal's scrollback once they are handed out"
        )
    else:
        console.print(
            f"Wrote {total} share sheets to {out_dir} (any {threshold} open a backup).",
            markup=False,
        )
        console.print(
            "Hand one to each custodian, then delete the files from this machine.", markup=False
        )
    console.print(f"Key id:    {result.key_id}", markup=False)
    console.print(f"Recipient: {result.recipient}", markup=False)


@group.command("combine")
@share_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the age identity file here (default: stdout).",
)
@passphrase_options
def combine(
    shares: tuple[Path, ...], out: Path | None, passphrase_flag: bool, passphrase_file: Path | None
) -> None:
    """Offline: rebuild the master key from a quorum of shares as an age identity file."""
    text, kid = ceremonies.combine_to_identity(
        list(shares), passphrase_source(passphrase_flag, passphrase_file)
    )
    if out is None:
        sys.stdout.write(text)
        return
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise OutputError(f"{out} exists already: refusing to overwrite") from None
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {exc.strerror}") from exc
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    console.print(
        f"Wrote the identity of key {kid} to {out} (mode 0600). Delete it when done.", markup=False
    )


@group.command("drill")
@share_option
@passphrase_options
@config_option
@json_option
@click.pass_context
def drill(
    ctx: click.Context,
    shares: tuple[Path, ...],
    passphrase_flag: bool,
    passphrase_file: Path | None,
    config_path: Path | None,
    as_json: bool,
) -> None:
    """Prove a quorum of shares rebuilds the current master key; nothing is written."""
    config = load(ctx, config_path)
    record = ceremonies.drill(
        Keystore(config.appliance.state_dir),
        list(shares),
        passphrase_source(passphrase_flag, passphrase_file),
    )
    if as_json:
        print_json({"ok": True, "key_id": record.id, "shares": len(shares)})
    else:
        console.print(
            f"OK: {len(shares)} shares rebuild the current master key {record.id}.", markup=False
        )


@group.command("list")
@config_option
@json_option
@click.pass_context
def list_keys(ctx: click.Context, config_path: Path | None, as_json: bool) -> None:
    """Key ids, creation dates, and which retained backups need which key."""
    # The appliance side: not imported on a custodian's light install (combine, drill).
    from sealbox.destinations.repos import destination_backend
    from sealbox.usecases.secrets_backup import backup_key_ids

    config = load(ctx, config_path)
    keystore = Keystore(config.appliance.state_dir)
    records = keystore.records()
    needs: dict[str, list[str]] = {}
    if config.secrets is not None and config.secrets.destination in config.destinations:
        backend = destination_backend(config, config.secrets.destination)
        try:
            for name, ids in backup_key_ids(backend, config.appliance.name):
                for kid in ids:
                    needs.setdefault(kid, []).append(name)
        finally:
            backend.close()
    if as_json:
        print_json(
            [
                {
                    "id": r.id,
                    "recipient": r.recipient,
                    "created": r.created,
                    "current": r.current,
                    "threshold": r.threshold,
                    "shares": r.shares,
                    "last_drill": r.last_drill,
                    "backups": needs.get(r.id, []),
                }
                for r in records
            ]
        )
        return
    if not records:
        warn("no master key: run `sealbox keys ceremony`")
    for r in records:
        flag = "current" if r.current else "retired"
        quorum = f"{r.threshold}-of-{r.shares}" if r.threshold else "external"
        console.print(
            f"{r.id}  {flag:<7}  created {r.created}  {quorum}  last drill {r.last_drill or 'never'}",
            markup=False,
        )
        console.print(f"    {r.recipient}", markup=False)
        console.print(
            f"    needed by {len(needs.get(r.id, []))} retained secrets backup(s)", markup=False
        )


@group.command("rotate-signer")
@config_option
@json_option
@click.pass_context
def rotate_signer(ctx: click.Context, config_path: Path | None, as_json: bool) -> None:
    """Replace the appliance signing key; the old one vouches for the new (backups stay
    verifiable with the sheets that name the old key; the next ceremony's sheets name both)."""

    config = load(ctx, config_path)
    keystore = Keystore(config.appliance.state_dir)
    new, link = keystore.rotate_signer()
    line = sshsig.public_key_line(new)
    if as_json:
        print_json(
            {"signer": line, "fingerprint": sshsig.fingerprint(new), "previous": link.previous}
        )
        return
    console.print(f"New signing key {sshsig.fingerprint(new)}: {line}", markup=False)
    console.print(
        "The old key signed an endorsement of it: sheets naming the old key still verify new"
        " backups. Hold a new ceremony to put the new key on the sheets.",
        markup=False,
    )
