"""``sealbox breakglass open FILE ... list|search|show|export`` and ``breakglass verify``.

Works with no config at all: a custodian's laptop has only the backup files and the sheets.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from sealbox.breakglass import export as exporter
from sealbox.breakglass import opener, receipts
from sealbox.cli import opener_cmd, receipt_cmd
from sealbox.cli.common import (
    err_console,
    json_option,
    passphrase_options,
    passphrase_source,
    print_json,
    warn,
)
from sealbox.crypto import sshsig
from sealbox.crypto.trust import Trust
from sealbox.errors import KeyMaterialError, NotFoundError, OutputError
from sealbox.keys.material import from_identity_file, from_share_files, pinned_trust

MASK = "********"


@click.group("breakglass")
def group() -> None:
    """Open a secrets backup offline (no config needed)."""


class _OpenGroup(click.Group):
    """``open FILE --share a --share b list``: let the group's options follow FILE.

    Click stops parsing a group's options at its first positional argument; custodians type the
    file first, so options of ``open`` found before the subcommand name are moved to the front.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        options = {o: p for p in self.params if isinstance(p, click.Option) for o in p.opts}
        front: list[str] = []
        rest: list[str] = []
        i = 0
        while i < len(args):
            arg = args[i]
            if arg in self.commands or arg == "--":
                rest += args[i:]
                break
            option = options.get(arg.split("=", 1)[0])
            if option is None:
                rest.append(arg)
            else:
                front.append(arg)
                if not option.is_flag and "=" not in arg and i + 1 < len(args):
                    i += 1
                    front.append(args[i])
            i += 1
        return super().parse_args(ctx, front + rest)


@group.group("open", cls=_OpenGroup)
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--identity", type=click.Path(dir_okay=False, path_type=Path), help="An age identity file."
)
@click.option(
    "--share",
    "shares",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A custodian share sheet (repeat for a quorum).",
)
@passphrase_options
@click.option(
    "--signer",
    "signers",
    multiple=True,
    help="An appliance key to accept: 'ssh-ed25519 AAAA...' or a file holding it (repeatable;"
    " added to the Signer: lines of the sheets).",
)
@click.option(
    "--ignore-signature",
    "--unverified",
    "ignore_signature",
    is_flag=True,
    help="Open even if the signature is missing or bad, or no sheet pins its signer (says so).",
)
@click.option(
    "--receipt",
    "receipt_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where show --reveal and export write their receipt (default: a new"
    " sealbox-receipt-*.json in $SEALBOX_RECEIPT_DIR or the current directory).",
)
@click.pass_context
def open_group(
    ctx: click.Context,
    file: Path,
    identity: Path | None,
    shares: tuple[Path, ...],
    passphrase_flag: bool,
    passphrase_file: Path | None,
    signers: tuple[str, ...],
    ignore_signature: bool,
    receipt_path: Path | None,
) -> None:
    """Verify and decrypt FILE in memory, then run COMMAND on it."""
    if (identity is None) == (not shares):
        raise KeyMaterialError("give either --identity FILE or a quorum of --share FILE")
    ctx.obj = {
        "file": file,
        "identity": identity,
        "shares": list(shares),
        "signers": signers,
        "ignore_signature": ignore_signature,
        "passphrase": passphrase_source(passphrase_flag, passphrase_file),
        "receipt_path": receipt_path,
    }


def _open(ctx: click.Context) -> opener.Opened:
    params: dict[str, Any] = ctx.find_object(dict) or {}
    files = opener.load_files(params["file"])
    if params["identity"] is not None:
        unlocked = from_identity_file(params["identity"])
    else:
        unlocked = from_share_files(params["shares"], params["passphrase"])
    trust = pinned_trust(
        unlocked,
        opener.parse_signers(params["signers"]),
        None,  # a custodian's laptop: only the sheets and --signer vouch
        params["ignore_signature"],
    )
    opened = opener.open_backup(
        files, unlocked, trust=trust, ignore_signature=params["ignore_signature"]
    )
    params["receipt"] = receipt_cmd.start_receipt(opened, unlocked, files.path.name)
    for message in opened.warnings:
        warn(message)
    doc = opened.document
    ctx.call_on_close(doc.close)
    signed = (
        f"signed by {sshsig.fingerprint(opened.verified.signer)}"
        if opened.verified and opened.verified.pinned
        else "UNVERIFIED"
    )
    err_console.print(
        f"{files.path.name}: appliance {doc.appliance}, created {doc.created}, "
        f"{len(doc)} items, {signed}",
        markup=False,
    )
    return opened


def _record(ctx: click.Context, action: str, items: list[dict[str, Any]], fmt: str | None) -> None:
    """Write the receipt before anything is revealed: a reveal is never left unrecorded."""
    params: dict[str, Any] = ctx.find_object(dict) or {}
    receipt = params["receipt"]
    receipts.add_event(receipt, action, items, fmt)
    path = receipt_cmd.write_receipt(receipt, params.get("receipt_path"))
    warn(
        f"receipt {path}: bring it to the appliance (`sealbox breakglass receipt import`) so"
        f" the {len(items)} item(s) get rotated"
    )


def _row(item: dict[str, Any]) -> str:
    return "  ".join(
        [
            f"{item.get('id', '')!s:<24.24}",
            f"{item.get('type', '')!s:<11}",
            f"{item.get('name', '')!s:<32.32}",
            f"{item.get('host') or item.get('url') or '':<28.28}",
            f"{item.get('username') or '':<16.16}",
            f"v{item.get('versions', 1)}",
        ]
    ).rstrip()


def _print_rows(items: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print_json(items)
        return
    out = sys.stdout
    out.write(
        _row(
            {"id": "ID", "type": "TYPE", "name": "NAME", "host": "HOST/URL", "username": "USER"}
        ).replace("v1", "VERSIONS")
        + "\n"
    )
    out.writelines(_row(i) + "\n" for i in items)


@open_group.command("list")
@click.option("--type", "item_type", help="Only items of this type.")
@json_option
@click.pass_context
def list_cmd(ctx: click.Context, item_type: str | None, as_json: bool) -> None:
    """List every item (no secret values)."""
    items = _open(ctx).document.summaries
    if item_type:
        items = [i for i in items if i.get("type") == item_type]
    _print_rows(items, as_json)


@open_group.command("search")
@click.argument("term")
@click.option(
    "--field",
    type=click.Choice(["name", "host", "url", "username", "tag"]),
    help="Search only this field (default: name, host, URL, username and tags).",
)
@json_option
@click.pass_context
def search(ctx: click.Context, term: str, field: str | None, as_json: bool) -> None:
    """Find items by name, host, URL, username or tag (case-insensitive substring)."""
    found = _open(ctx).document.search(term, field)
    _print_rows(found, as_json)
    if not as_json:
        err_console.print(f"{len(found)} match(es)", markup=False)


def _masked(secret: dict[str, str], reveal: bool) -> dict[str, str]:
    return dict(secret) if reveal else {k: MASK for k in secret}


@open_group.command("show")
@click.argument("item_id")
@click.option("--reveal", is_flag=True, help="Print secret values (default: masked).")
@json_option
@click.pass_context
def show(ctx: click.Context, item_id: str, reveal: bool, as_json: bool) -> None:
    """Show one item and its version history."""
    item = _open(ctx).document.find(item_id)
    if item is None:
        raise NotFoundError(f"no item with id {item_id!r} (try `search`)")
    if reveal:
        _record(ctx, "reveal", [item], None)
    history = [
        {"time": v.get("time"), "secret": _masked(v.get("secret") or {}, reveal)}
        for v in item.get("history") or []
    ]
    if as_json:
        print_json(
            {**item, "secret": _masked(item.get("secret") or {}, reveal), "history": history}
        )
        return
    lines = [
        f"{'id':<10} {item.get('id')}",
        f"{'type':<10} {item.get('type')}",
        f"{'name':<10} {item.get('name')}",
    ]
    for key in ("host", "url", "username", "notes", "updated", "source"):
        if item.get(key):
            lines.append(f"{key:<10} {item[key]}")
    if item.get("tags"):
        lines.append(f"{'tags':<10} {', '.join(item['tags'])}")
    for key, value in (item.get("fields") or {}).items():
        lines.append(f"{key:<10} {value}")
    for key, value in _masked(item.get("secret") or {}, reveal).items():
        lines.append(f"{key:<10} {value}")
    if history:
        lines.append(f"history    {len(history)} earlier version(s)")
        for version in history:
            values = ", ".join(f"{k}={v}" for k, v in version["secret"].items())
            lines.append(f"  set {version['time']}: {values}")
    if not reveal:
        lines.append("(secret values masked: add --reveal to print them)")
    sys.stdout.write("\n".join(lines) + "\n")


@open_group.command("export")
@click.option("--format", "fmt", type=click.Choice(exporter.FORMATS), required=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="KDBX password from this file (default: prompt).",
)
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@click.pass_context
def export(
    ctx: click.Context, fmt: str, out: Path, password_file: Path | None, force: bool
) -> None:
    """Write every item to a JSON, CSV or KeePass (KDBX 4) file."""
    password = None
    if fmt == "kdbx":
        if password_file is not None:
            try:
                password = password_file.read_text(encoding="utf-8").splitlines()[0]
            except (OSError, IndexError) as exc:
                raise OutputError(f"cannot read a password from {password_file}") from exc
        elif sys.stdin.isatty():
            password = click.prompt(
                "Password for the KDBX file", hide_input=True, confirmation_prompt=True, err=True
            )
        else:
            raise OutputError("a KDBX export needs --password-file or a terminal to ask for one")
    doc = _open(ctx).document
    _record(ctx, "export", list(doc.summaries), fmt)
    exporter.export(doc, fmt, out, password=password, force=force)
    err_console.print(f"Wrote {len(doc)} items to {out} ({fmt}, mode 0600).", markup=False)
    if fmt != "kdbx":
        warn(f"{out} holds every secret in the clear: delete it when the emergency is over")


@group.command("verify")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--signer",
    "signers",
    multiple=True,
    help="Expected appliance key: 'ssh-ed25519 AAAA...' or a file holding it (repeatable).",
)
@json_option
def verify(file: Path, signers: tuple[str, ...], as_json: bool) -> None:
    """Check a backup's signature and integrity without any key."""
    files = opener.load_files(file)
    expected = opener.parse_signers(signers)
    verified = opener.verify_files(files, Trust.of(expected, "--signer") if expected else None)
    manifest = verified.manifest or {}
    result = {
        "file": str(file),
        "ok": True,
        "signer": sshsig.fingerprint(verified.signer),
        "signer_checked": verified.pinned,
        "appliance": manifest.get("appliance"),
        "created": manifest.get("created"),
        "size": len(files.ciphertext),
        "keys": manifest.get("keys", []),
        "counts": manifest.get("counts", {}),
        "warnings": verified.warnings,
    }
    if as_json:
        print_json(result)
        return
    for message in verified.warnings:
        warn(message)
    who = (
        "the expected appliance key"
        if verified.pinned
        else "(signer not pinned: pass --signer to check who)"
    )
    lines = [
        f"{file.name}: OK",
        f"  signature  valid, by {result['signer']} {who}",
        f"  integrity  {len(files.ciphertext):,} bytes, SHA-256 matches the manifest"
        if manifest
        else "  integrity  no manifest to compare with",
    ]
    if manifest:
        lines.append(f"  appliance  {manifest.get('appliance')}, created {manifest.get('created')}")
        lines.append(
            "  keys       "
            + ", ".join(f"{k.get('id')} ({k.get('role')})" for k in manifest.get("keys", []))
        )
        counts = ", ".join(f"{n} {t}" for t, n in (manifest.get("counts") or {}).items() if n)
        lines.append(f"  items      {manifest.get('total')} ({counts})")
    sys.stdout.write("\n".join(lines) + "\n")


# The browser opener and the receipts have their own modules.
group.add_command(opener_cmd.opener)
group.add_command(receipt_cmd.group)
