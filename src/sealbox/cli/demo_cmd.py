"""``sealbox demo [--dir DIR]``: the whole product on a demo appliance."""

from __future__ import annotations

from pathlib import Path

import click

from sealbox.cli.common import console


@click.command("demo")
@click.option(
    "--dir",
    "root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("sealbox-demo"),
    show_default=True,
    help="Where to build the demo appliance, custodians and remote.",
)
def command(root: Path) -> None:
    """Build a demo appliance and run the product on it (rerun for "the next day")."""
    from sealbox.demo.run import run_demo

    run_demo(root, console)
