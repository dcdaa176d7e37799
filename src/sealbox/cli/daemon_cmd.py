"""``sealbox daemon``: schedules, probes, the status API and /metrics, until SIGTERM."""

from __future__ import annotations

from pathlib import Path

import click

from sealbox.cli.common import config_option, err_console
from sealbox.cli.common import config_path as resolve_config
from sealbox.daemon.api import make_app
from sealbox.daemon.service import Daemon
from sealbox.dashboard.headers import SecurityHeaders
from sealbox.dashboard.web import routes as dashboard_routes


@click.command("daemon")
@config_option
@click.pass_context
def command(ctx: click.Context, config_path: Path | None) -> None:
    """Run every job on its schedule; serve status, history, run-now and /metrics."""
    import asyncio

    daemon = Daemon(resolve_config(ctx, config_path))
    # The API and the dashboard, composed here; every response carries the security headers.
    app = SecurityHeaders(make_app(daemon, dashboard_routes(daemon)))

    def ready() -> None:
        d = daemon.config.daemon
        scheme = "https" if d.tls_cert else "http"
        jobs = ", ".join(f"{n} ({j.schedule})" for n, j in sorted(daemon.jobs.items()))
        err_console.print(
            f"sealbox daemon: listening on {scheme}://{d.listen}; jobs: {jobs or 'none'}",
            markup=False,
        )

    asyncio.run(daemon.serve(app, on_ready=ready))
