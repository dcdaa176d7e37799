"""``sealbox demo [--dir DIR] [--serve | --daemon SECONDS]``: the product on a demo appliance."""

from __future__ import annotations

from pathlib import Path

import click

from sealbox.cli.common import console
from sealbox.demo.daemon import run_daemon_demo
from sealbox.demo.run import run_demo, serve_remote


@click.command("demo")
@click.option(
    "--dir",
    "root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("sealbox-demo"),
    show_default=True,
    help="Where to build the demo appliance, custodians and remote.",
)
@click.option(
    "--serve",
    is_flag=True,
    help="Only serve the demo's remote/ with its agent (foreground), so other commands can use it.",
)
@click.option(
    "--daemon",
    "daemon_seconds",
    type=click.IntRange(5, 3600),
    default=None,
    metavar="SECONDS",
    help="On a built demo: run the daemon that long (every job catches up), then show status.",
)
def command(root: Path, serve: bool, daemon_seconds: int | None) -> None:
    """Build a demo appliance and run the product on it (rerun for "the next day")."""
    if daemon_seconds is not None:
        run_daemon_demo(root, console, daemon_seconds)
        return
    if serve:
        serve_remote(root, console)
        return

    run_demo(root, console)
