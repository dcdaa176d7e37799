"""``sealbox breakglass opener --out FILE`` and ``--verify FILE``: the offline browser opener."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from sealbox.breakglass import opener_html
from sealbox.cli.common import err_console, json_option, print_json
from sealbox.errors import IntegrityError


@click.command("opener")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the opener (one self-contained HTML file) here.",
)
@click.option(
    "--verify",
    "verify_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Check that FILE is this Sealbox's opener (its SHA-256, as printed on the sheets).",
)
@click.option("--force", is_flag=True, help="Replace an existing --out file.")
@json_option
def opener(out: Path | None, verify_path: Path | None, force: bool, as_json: bool) -> None:
    """Write the offline browser opener, or check a copy of it.

    The opener opens a secrets backup in any browser, with no network and nothing to install:
    open the HTML file, give it the three backup files and a quorum of share sheets.
    """
    if (out is None) == (verify_path is None):
        raise click.UsageError("give either --out FILE or --verify FILE")
    if out is not None:
        digest = opener_html.write_opener(out, force=force)
        if as_json:
            print_json({"file": str(out), "sha256": digest})
            return
        err_console.print(f"Wrote the browser opener to {out}.", markup=False)
        sys.stdout.write(f"SHA-256 {digest}\n")
        return
    assert verify_path is not None
    check = opener_html.verify_copy(verify_path)
    if as_json:
        print_json({"file": str(verify_path), "sha256": check.sha256, "ok": check.ok})
    if not check.ok:
        raise IntegrityError(
            f"{verify_path}: SHA-256 {check.sha256} is not this Sealbox's opener"
            f" ({check.expected}): do not open a backup with it"
        )
    if not as_json:
        sys.stdout.write(f"{verify_path}: OK, the Sealbox opener, SHA-256 {check.sha256}\n")
