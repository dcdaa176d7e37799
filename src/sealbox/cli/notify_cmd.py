"""``sealbox notify test``: one test event through every alert channel, each result reported."""

from __future__ import annotations

from pathlib import Path

import click

from sealbox.alerts.notifier import Notifier
from sealbox.cli.common import config_option, console, json_option, load, print_json
from sealbox.errors import AlertDeliveryError, ConfigError


@click.group("notify")
def group() -> None:
    """Alert channels (email, syslog to a SIEM)."""


@group.command("test")
@config_option
@json_option
@click.pass_context
def test(ctx: click.Context, config_path: Path | None, as_json: bool) -> None:
    """Send one test event through every channel, whatever its minimum severity."""

    config = load(ctx, config_path)
    notifier = Notifier(config)
    if not notifier.channels:
        raise ConfigError("no alert channel configured: add [alerts] email or syslog")
    results = notifier.send(notifier.event("notify.test"), every_channel=True)
    if as_json:
        print_json([r.__dict__ for r in results])
    else:
        for r in results:
            outcome = "delivered" if r.ok else f"FAILED: {r.error} (queued for retry)"
            console.print(f"{r.channel}: {outcome}", markup=False)
    failed = [r for r in results if not r.ok]
    if failed:
        raise AlertDeliveryError(f"{len(failed)} of {len(results)} channel(s) did not deliver")
