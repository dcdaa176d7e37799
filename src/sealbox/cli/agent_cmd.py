"""``sealbox agent serve | scrub | token create | token list | token revoke`` (on the storage
server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sealbox.agent.app import build_app
from sealbox.agent.scrub import scrub_root
from sealbox.agent.tokens import TokenStore
from sealbox.agent.upload import UploadRules
from sealbox.alerts.events import make_event
from sealbox.alerts.notifier import Notifier
from sealbox.alerts.report import heal_events
from sealbox.cli.common import console, json_option, print_json
from sealbox.cli.repo_cmd import print_heal_report
from sealbox.config.load import load_config
from sealbox.errors import ConfigError, IntegrityError
from sealbox.util.httpserve import Limits, server_config, tls_context
from sealbox.util.netaddr import loopback_host

root_option = click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="The directory holding every namespace.",
)


@click.group("agent")
def group() -> None:
    """The Sealbox agent on the storage server."""


@group.command("serve")
@root_option
@click.option("--listen", default="127.0.0.1:8443", show_default=True, help="HOST:PORT")
@click.option("--tls-cert", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--tls-key", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--client-ca",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Also require a client certificate issued by this CA (mutual TLS).",
)
@click.option("--append-only", is_flag=True, help="Never replace or delete a stored object.")
@click.option(
    "--quota",
    type=click.IntRange(min=0),
    help="Bytes each namespace may store (507 beyond; reported as capacity).",
)
@click.option(
    "--max-object", type=int, default=512 << 20, show_default=True, help="Largest object accepted."
)
@click.option(
    "--idle-timeout",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds an upload may send nothing before it is abandoned.",
)
@click.option(
    "--min-upload-rate",
    type=click.FloatRange(min=0),
    default=64 * 1024,
    show_default=True,
    help="Bytes/s an upload must average after --upload-grace (408 otherwise; 0: no rule).",
)
@click.option(
    "--upload-grace",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds before --min-upload-rate applies.",
)
@click.option(
    "--header-timeout",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds a client has, from connecting (TLS included), to send a request's headers.",
)
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    default=256,
    show_default=True,
    help="Connections open at once, all clients together.",
)
@click.option(
    "--max-connections-per-client",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Connections open at once from one client address.",
)
def serve(
    root: Path,
    listen: str,
    tls_cert: Path | None,
    tls_key: Path | None,
    client_ca: Path | None,
    append_only: bool,
    quota: int | None,
    max_object: int,
    idle_timeout: float,
    min_upload_rate: float,
    upload_grace: float,
    header_timeout: float,
    max_connections: int,
    max_connections_per_client: int,
) -> None:
    """Serve ROOT over HTTPS (plain HTTP only on a loopback address)."""
    import uvicorn

    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--listen {listen!r}: use HOST:PORT")
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("give both --tls-cert and --tls-key")
    if tls_cert is None and not loopback_host(host):
        raise ConfigError(
            "without a certificate the agent serves plain HTTP, on a loopback address only"
        )
    if client_ca is not None and tls_cert is None:
        raise ConfigError("--client-ca needs TLS: give --tls-cert and --tls-key too")
    tls = tls_context(tls_cert, tls_key, client_ca) if tls_cert and tls_key else None
    root.mkdir(parents=True, exist_ok=True)
    app = build_app(
        root,
        append_only=append_only,
        quota=quota,
        max_object=max_object,
        rules=UploadRules(idle_timeout, min_upload_rate, upload_grace),
    )
    limits = Limits(header_timeout, max_connections, max_connections_per_client)
    config = server_config(
        app,
        host.strip("[]"),
        int(port),
        limits,
        tls,
        log_level="warning",
        timeout_keep_alive=30,
        timeout_graceful_shutdown=5,
        h11_max_incomplete_event_size=64 * 1024,
    )
    uvicorn.Server(config).run()


@group.command("scrub")
@root_option
@click.option("--dry-run", is_flag=True, help="Verify only: name what is repairable and lost.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A Sealbox config whose [alerts] channels receive the scrub.* and repair.* events"
    " ([appliance] name names this host).",
)
@json_option
def scrub(root: Path, dry_run: bool, config_path: Path | None, as_json: bool) -> None:
    """Verify every repository below ROOT against its names and parity and repair what parity
    allows, without any key; exits 5 when anything is lost or left damaged."""
    config = None
    if config_path is not None:
        config = load_config(config_path)
    host = config.appliance.name if config else "agent"
    results, failed = [], []
    for done in scrub_root(root, repair=not dry_run):
        where = str(done.path)
        events = [
            make_event(name, host, **fields)
            for name, fields in heal_events(where, done.report, not dry_run, round(done.seconds, 3))
        ]
        if config is not None:
            _send(config, events)
        if not done.report.ok:
            failed.append(where)
        results.append({"repository": where, **done.report.to_dict(), "events": events})
        if not as_json:
            print_heal_report(done.report, prefix=f"{where}: ")
            for event in events:
                console.print(
                    f"{where}: {event.name} ({event.severity}): {event.message}", markup=False
                )
    if as_json:
        for result in results:
            result["events"] = [e.to_dict() for e in result["events"]]
        print_json({"root": str(root), "repositories": results})
    elif not results:
        console.print(f"no repository below {root}", markup=False)
    if failed:
        raise IntegrityError(f"scrub: {', '.join(failed)}: damage left (see above)")


def _send(config: Any, events: list[Any]) -> None:
    notifier = Notifier(config)
    for event in events:
        notifier.send(event)  # a channel's failure is logged and queued, never raised


@group.group("token")
def token() -> None:
    """Namespace tokens (printed once; only a hash is stored)."""


@token.command("create")
@click.argument("namespace")
@root_option
@click.option(
    "--admin", is_flag=True, help="May delete and replace even in append-only mode (pruning)."
)
def create(namespace: str, root: Path, admin: bool) -> None:
    """Create a token for NAMESPACE; the token is the last line printed."""

    record, value = TokenStore(root).create(namespace, admin=admin)
    console.print(
        f"token {record.id} for namespace {namespace}{' (admin)' if admin else ''}; store it now,"
        " it is not shown again:",
        markup=False,
    )
    click.echo(value)


@token.command("list")
@root_option
@json_option
def list_tokens(root: Path, as_json: bool) -> None:
    """Tokens (ids, namespaces, dates; never the secrets)."""

    tokens = TokenStore(root).tokens()
    if as_json:
        print_json([{k: v for k, v in t.__dict__.items() if k != "sha256"} for t in tokens])
        return
    for t in tokens:
        state = f"revoked {t.revoked}" if t.revoked else "active"
        console.print(
            f"{t.id}  {t.namespace:<20} created {t.created}  {state}{'  admin' if t.admin else ''}",
            markup=False,
        )


@token.command("revoke")
@click.argument("token_id")
@root_option
def revoke(token_id: str, root: Path) -> None:
    """Revoke a token by its id."""

    TokenStore(root).revoke(token_id)
    console.print(f"token {token_id} revoked", markup=False)
