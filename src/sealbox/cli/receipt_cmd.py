"""``sealbox breakglass receipt import FILE | list | done ITEM``: rotations after a break-glass,
and the receipts the command-line opener writes when it reveals or exports."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click
import orjson

from sealbox import __version__
from sealbox.breakglass import receipts, rotations
from sealbox.cli.common import config_option, err_console, json_option, load, print_json
from sealbox.crypto import sshsig
from sealbox.errors import CorruptFileError, NotFoundError, OutputError

RECEIPT_DIR_ENV = "SEALBOX_RECEIPT_DIR"


@click.group("receipt")
def group() -> None:
    """Break-glass receipts: import one, list the credentials to rotate, mark them done."""


@group.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@config_option
@json_option
@click.pass_context
def import_cmd(ctx: click.Context, file: Path, config_path: Path | None, as_json: bool) -> None:
    """Import a receipt from an opener: alert (breakglass.used) and list what to rotate."""
    from sealbox.alerts import report  # the appliance side: not needed to open a backup

    config = load(ctx, config_path)
    try:
        with file.open("rb") as handle:
            data = handle.read(receipts.MAX_RECEIPT + 1)
    except FileNotFoundError:
        raise NotFoundError(f"no such receipt file: {file}") from None
    except OSError as exc:
        raise CorruptFileError(f"cannot read {file}: {exc.strerror}") from exc
    try:
        receipt = receipts.parse_receipt(data)
    except CorruptFileError as exc:
        raise CorruptFileError(f"{file}: {exc}") from exc
    imported = rotations.import_receipt(config.appliance.state_dir, receipt)
    alerted = False
    if imported.new:
        named = receipt.items()
        shares = ", ".join(
            f"#{s['index']} of set {s['identifier']}" for s in receipt.body.get("shares") or []
        )
        alerted = report.breakglass_used(
            config,
            backup=receipt.backup,
            opened=receipt.opened,
            opener=receipt.body.get("opener"),
            machine=receipt.body.get("machine"),
            shares=shares or "-",
            items=len(named),
            item_ids=",".join(item.id for item, _, _ in named[:200]),
            receipt=receipt.digest[:16],
        )
    if as_json:
        print_json(
            {
                "receipt": receipt.digest,
                "new": imported.new,
                "alerted": alerted,
                "revealed": imported.revealed,
                "to_rotate": imported.to_rotate,
            }
        )
        return
    what = "imported" if imported.new else "already imported (nothing changed)"
    err_console.print(
        f"{file.name}: {what}; {imported.revealed} item(s) revealed from {receipt.backup}"
        f" on {receipt.body.get('machine')}",
        markup=False,
    )
    _print_tasks(imported.to_rotate)


def _print_tasks(tasks: list[dict[str, Any]]) -> None:
    if not tasks:
        sys.stdout.write("No credential waits for rotation.\n")
        return
    sys.stdout.write(f"{len(tasks)} credential(s) to rotate:\n")
    for task in tasks:
        sys.stdout.write(
            f"  {task['id']!s:<24.24}  {task['type']!s:<11}  {task['name']!s:<40.40}"
            f"  {task['how']} {task['revealed']}\n"
        )
    sys.stdout.write("Mark each one with `sealbox breakglass receipt done ITEM` once rotated.\n")


@group.command("list")
@config_option
@json_option
@click.pass_context
def list_cmd(ctx: click.Context, config_path: Path | None, as_json: bool) -> None:
    """The credentials revealed by a break-glass and not yet rotated."""
    tasks = rotations.open_rotations(load(ctx, config_path).appliance.state_dir)
    if as_json:
        print_json(tasks)
        return
    _print_tasks(tasks)


@group.command("done")
@click.argument("items", nargs=-1, required=True)
@config_option
@click.pass_context
def done_cmd(ctx: click.Context, items: tuple[str, ...], config_path: Path | None) -> None:
    """Mark ITEM (an item id, repeatable) as rotated."""
    state_dir = load(ctx, config_path).appliance.state_dir
    for item in items:
        task = rotations.mark_done(state_dir, item)
        sys.stdout.write(f"{task['id']}: rotated ({task['name']})\n")
    left = len(rotations.open_rotations(state_dir))
    err_console.print(f"{left} credential(s) still to rotate.", markup=False)


# ---- the command-line opener's receipts -------------------------------------------------------


def start_receipt(opened: Any, unlocked: Any, file_name: str) -> dict[str, Any]:
    """A receipt for one ``breakglass open`` (``opened``: opener.Opened, ``unlocked``: Unlocked)."""
    manifest = (opened.verified.manifest if opened.verified else None) or {}
    doc = opened.document
    return receipts.new_receipt(
        backup={
            "file": file_name,
            "appliance": doc.appliance,
            "created": doc.created,
            "sha256": manifest.get("sha256"),
        },
        key_id=unlocked.key_ids[0] if unlocked.key_ids else None,
        signer=sshsig.fingerprint(opened.verified.signer) if opened.verified else None,
        verified=bool(opened.verified and opened.verified.pinned),
        shares=list(unlocked.shares),
        opener_version=__version__,
    )


def write_receipt(receipt: dict[str, Any], path: Path | None) -> Path:
    """Write the receipt (to ``path``, or a new name in $SEALBOX_RECEIPT_DIR or the current
    directory); never over an existing file. Returns where it went."""
    if path is None:
        folder = Path(os.environ.get(RECEIPT_DIR_ENV) or ".")
        stamp = receipt["opened"].replace("-", "").replace(":", "")
        base = f"sealbox-receipt-{receipt['backup'].get('appliance') or 'backup'}-{stamp}"
        path = folder / f"{base}.json"
        number = 1
        while path.exists():
            number += 1
            path = folder / f"{base}-{number}.json"
    data = orjson.dumps(receipt, option=orjson.OPT_INDENT_2) + b"\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise OutputError(f"{path} exists already: choose another --receipt") from None
    except OSError as exc:
        raise OutputError(f"cannot write the receipt {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return path
