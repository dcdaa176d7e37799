"""The demo: build a demo appliance, run the product on it, and show what happened.

First run: the appliance, a 3-of-5 ceremony, the secrets backup, opening it with three shares.
Later runs are "the next day": passwords rotate, a new backup is made, the newest one is opened.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from rich.console import Console
from rich.table import Table

from sealbox.agent.tokens import TokenStore
from sealbox.breakglass import opener, opener_html
from sealbox.config import load_config
from sealbox.demo import appliance, vault
from sealbox.destinations.repos import open_product_repo
from sealbox.errors import DestinationError, IntegrityError
from sealbox.keys import ceremony
from sealbox.keys.material import from_share_files, pinned_trust
from sealbox.keys.material import from_share_files as unlock
from sealbox.keys.store import Keystore
from sealbox.recordings.verify import verify
from sealbox.usecases import recordings_backup as store
from sealbox.usecases import secrets_backup, system_backup, system_restore

__all__ = ["DemoReport", "free_port", "run_demo", "serve_remote", "serving_agent"]

NAMESPACE = "demo-pam"


def serve_remote(root: Path, console: Console) -> None:
    """Serve the demo's remote/ with its agent until interrupted (``sealbox demo --serve``)."""
    config = load_config(root.absolute() / "sealbox.toml")
    url = config.destinations["remote"].url
    if not url.startswith("agent+"):
        raise DestinationError("this demo's remote/ is a plain directory: nothing to serve")
    console.print(f"Serving {root / 'remote'} at {url} (Ctrl-C to stop)")
    with serving_agent(root.absolute(), url):
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return


def _remote_dir(root: Path, config: Any) -> Path:
    """Where the demo's backups land on disk (the agent keeps each namespace in a directory)."""
    url = config.destinations["remote"].url
    return root / "remote" / NAMESPACE if url.startswith("agent+") else root / "remote"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving_agent(root: Path, url: str) -> Iterator[None]:
    """Serve ``remote/`` with a local agent while the demo runs (when the config points at one)."""
    import socket
    import subprocess
    import sys

    parts = urlsplit(url)
    if not parts.scheme.startswith("agent+"):
        yield
        return
    port = parts.port or 0
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sealbox",
            "agent",
            "serve",
            "--root",
            str(root / "remote"),
            "--listen",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                message = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
                raise DestinationError(
                    f"the demo's agent did not start on port {port}: {message[-200:]}"
                )
            time.sleep(0.1)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _next_day(root: Path) -> int:
    appliance.next_day_system(root)
    appliance.next_day_recordings(root)
    return vault.next_day(root / "appliance" / "vault.db")


def _system_steps(
    root: Path, config: Any, step: Callable[..., Any], shares: list[Path], console: Console
) -> None:
    """System backup, then a full reconstruction into ``restore/`` and its verification."""
    import shutil

    result = step(
        "system backup",
        "System backup (settings, software, audit logs, live SQLite dumps, inventory)",
        lambda: system_backup.run(config),
        lambda r: (
            f"snapshot {r.backup.snapshot.id[:12]}: {r.backup.snapshot.files:,} files,"
            f" {r.backup.snapshot.size:,} bytes, {len(r.databases)} database(s); stored"
            f" {r.backup.bytes_added:,} new bytes ({r.backup.files_unchanged:,} files unchanged)"
        ),
    )
    target = root / "restore"
    shutil.rmtree(target, ignore_errors=True)

    def restore() -> Any:
        plan = system_restore.plan(
            config, result.backup.snapshot.id, target, unlock(shares, None), database_files=True
        )
        return system_restore.run(plan)

    restored = step(
        "system restore",
        "Reconstruct the appliance into restore/ (plan, free space, verify)",
        restore,
        lambda r: f"{r.files:,} files, {r.bytes:,} bytes written and read back",
    )
    step(
        "verify",
        "Compare the reconstruction with the appliance",
        lambda: _compare(root, target, restored),
        lambda n: f"{n:,} files identical, databases open and complete",
    )


def _recordings_steps(root: Path, config: Any, step: Callable[..., Any], console: Console) -> None:
    """Recordings backup with one session still being recorded, then the chain verified."""

    _, handle = appliance.live_recording(root)
    try:
        result = step(
            "recordings",
            "Recordings backup (incremental; a session still being recorded is left for later)",
            lambda: store.run(config),
            lambda r: (
                f"{r.stored} new recordings stored ({r.bytes:,} bytes) of {r.seen} seen,"
                f" {len(r.waiting)} still being recorded; signed manifest at #{r.last_seq}"
            ),
        )
    finally:
        handle.close()  # type: ignore[attr-defined]
    for reason in result.waiting:
        console.print(f"  [dim]later: {reason}[/]")

    def check() -> Any:
        repo, _ = open_product_repo(config, config.recordings.destination, [], create=False)
        catalog = store.catalog_for(config, repo)
        try:
            return verify(repo, trust=repo.trust, catalog=catalog)
        finally:
            catalog.close()

    step(
        "verify chain",
        "Verify the recordings at the destination (chain, signatures, data)",
        check,
        lambda r: (
            f"{r.recordings} recordings in {r.batches} signed batches: "
            + ("intact" if r.ok else f"{len(r.errors)} problem(s)")
        ),
    )


def _compare(root: Path, target: Path, restored: Any) -> int:
    import filecmp
    import sqlite3

    count = 0
    for source in appliance.system_paths(root):
        copy = target / str(source).lstrip("/")
        for path in source.rglob("*"):
            if path.is_file():
                if not filecmp.cmp(path, copy / path.relative_to(source), shallow=False):
                    raise IntegrityError(f"{path}: the restored copy differs")
                count += 1
    for dump in (target / ".sealbox").glob("db-*"):
        with sqlite3.connect(f"file:{dump}?mode=ro", uri=True) as db:
            if db.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                raise IntegrityError(f"{dump}: restored database is damaged")
    return count


T = TypeVar("T")
OPENING_SHARES = (1, 3, 5)


@dataclass
class DemoReport:
    first_run: bool
    steps: list[tuple[str, float, str]] = field(default_factory=list)


def _destination(root: Path, agent_port: int | None) -> str:
    if agent_port is None:
        return f'url = "file://{root / "remote"}"'
    return (
        f'url = "agent+http://127.0.0.1:{agent_port}/{NAMESPACE}"\n'
        f'token_file = "{root / "appliance" / "agent.token"}"'
    )


def _config_text(root: Path, agent_port: int | None = None) -> str:
    cols = ", ".join(f'"{c}"' for c in vault.SECRET_COLUMNS)
    return f"""\
# Sealbox demo configuration, written by `sealbox demo`.
[appliance]
name = "demo-pam"
state_dir = "{root / "appliance" / "state"}"
var_dir = "{root / "appliance"}"

[destinations.remote]
{_destination(root, agent_port)}
# The demo's "remote" directory sits on this machine (served by a local agent): allowed here,
# and every run says so.
allow_on_appliance = true

[secrets]
destination = "remote"
keep_last = 10

[[secrets.sources]]
type = "sql"
name = "vault"
url = "sqlite:///{root / "appliance" / "vault.db"}"
query = "{vault.QUERY}"
history_query = "{vault.HISTORY_QUERY}"
columns = {{ updated = "updated_at", url = "url", tags = "tags", notes = "notes", secrets = [{cols}] }}

[system]
destination = "remote"
paths = [{", ".join(f'"{p}"' for p in appliance.system_paths(root))}]
exclude = ["*.tmp"]
retention = {{ keep_last = 7 }}

[[system.databases]]
type = "sqlite"
url = "sqlite:///{root / "appliance" / "var" / "lib" / "pam" / "app.db"}"

[[system.databases]]
type = "sqlite"
url = "sqlite:///{root / "appliance" / "vault.db"}"

[recordings]
destination = "remote"
path = "{root / "appliance" / "recordings"}"
settle_seconds = 60
name_pattern = '(?P<user>[^_]+)_(?P<target>[^_]+)_(?P<session>[^.]+)\\.rec'
retention = {{ keep_within = "5y" }}
"""


def run_demo(root: Path, console: Console) -> DemoReport:
    root = root.absolute()
    config_path = root / "sealbox.toml"
    report = DemoReport(first_run=not config_path.exists())

    def step(label: str, title: str, action: Callable[[], T], detail: Callable[[T], str]) -> T:
        console.print(f"[bold cyan]>[/] {title} ...")
        started = time.perf_counter()
        value = action()
        elapsed = time.perf_counter() - started
        text = detail(value)
        report.steps.append((label, elapsed, text))
        console.print(f"  {text} [dim]({elapsed:.2f} s)[/]")
        return value

    if report.first_run:
        console.print(f"[bold]Building a demo appliance in {root}[/]")
        step(
            "demo vault",
            "Create the credential vault (SQLite, 6 item types, version history)",
            lambda: vault.create_vault(root / "appliance" / "vault.db"),
            lambda n: f"{n} items in appliance/vault.db",
        )
        step(
            "demo system",
            "Add settings, software, audit logs and an application database",
            lambda: {
                **appliance.create_system(root),
                "recordings": len(list(appliance.create_recordings(root).rglob("*.rec"))),
            },
            lambda counts: (
                ", ".join(f"{n} {what} files" for what, n in counts.items())
                + ", var/lib/pam/app.db"
            ),
        )
        (root / "remote").mkdir(parents=True, exist_ok=True)
        port = free_port()
        _, token = TokenStore(root / "remote").create(NAMESPACE)
        token_file = root / "appliance" / "agent.token"
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)
        config_path.write_text(_config_text(root, port), encoding="utf-8")
    else:
        console.print(f"[bold]Next day on the demo appliance in {root}[/]")
        step(
            "next day",
            "A day of activity: passwords rotate, logs grow, a policy changes",
            lambda: _next_day(root),
            lambda n: f"{n} passwords rotated, logs and sessions added",
        )
    config = load_config(config_path)
    with serving_agent(
        root, config.destinations["remote"].url if "remote" in config.destinations else ""
    ):
        keystore = Keystore(config.appliance.state_dir)
        if keystore.current() is None:
            result = step(
                "key ceremony",
                "Key ceremony: master key split 3-of-5 for the custodians",
                lambda: ceremony.ceremony(
                    keystore,
                    appliance=config.appliance.name,
                    total=5,
                    threshold=3,
                    opener_sha256=opener_html.opener_sha256(),
                    out_dir=root / "custodians",
                ),
                lambda r: f"key {r.key_id}, sheets in custodians/share-01.txt .. share-05.txt",
            )
            console.print(f"  recipient {result.recipient}")

        backup = step(
            "secrets backup",
            "Secrets backup (export, age-encrypt to the master key, sign, store)",
            lambda: secrets_backup.run(config),
            lambda r: f"{r.name}: {r.total} items, {r.size:,} bytes in remote/",
        )
        for message in backup.warnings:
            console.print(f"  [yellow]warning:[/] {message}")

        shares = [root / "custodians" / f"share-{n:02d}.txt" for n in OPENING_SHARES]

        def open_it() -> opener.Opened:
            files = opener.load_files(_remote_dir(root, config) / backup.name)
            unlocked = from_share_files(shares, None)
            return opener.open_backup(
                files,
                unlocked,
                trust=pinned_trust(unlocked, [], None, accept_unverified=False),
                ignore_signature=False,
            )

        opened = step(
            "break the glass",
            "Break the glass: open the newest backup with shares 1, 3 and 5",
            open_it,
            lambda o: f"signature verified, {len(o.document)} items decrypted in memory",
        )
        summary_row = next(s for s in opened.document.summaries if s.get("type") == "credential")
        item = opened.document.find(summary_row["id"]) or {}
        table = Table(title=f"One item from {backup.name}", show_header=False)
        for key in ("id", "type", "name", "host", "username", "updated"):
            table.add_row(key, str(item.get(key)))
        table.add_row("password", item["secret"].get("password", ""))
        table.add_row("history", f"{len(item.get('history') or [])} earlier version(s)")
        console.print(table)
        opened.document.close()
        if config.system is not None:
            _system_steps(root, config, step, shares, console)
        if config.recordings is not None:
            _recordings_steps(root, config, step, console)

        summary = Table(title="Sealbox demo summary")
        summary.add_column("step")
        summary.add_column("seconds", justify="right")
        summary.add_column("result")
        for title, seconds, text in report.steps:
            summary.add_row(title, f"{seconds:.2f}", text)
        console.print(summary)
        console.print(
            f"The backups live in {_remote_dir(root, config)}, behind a local agent; to use the CLI on"
            f" the demo, serve it again:\n  sealbox agent serve --root {root / 'remote'} --listen"
            f" 127.0.0.1:{urlsplit(config.destinations['remote'].url).port} &\n"
            "Open a secrets backup yourself, as a custodian would:\n"
            f"  sealbox breakglass open {_remote_dir(root, config) / backup.name} \\\n"
            f"      --share {shares[0]} --share {shares[1]} --share {shares[2]} search admin\n"
            "Or with the standard age tool (bash: the key stays in a pipe, the secrets on screen):\n"
            f"  age -d -i <(sealbox keys combine --share {shares[0]} --share {shares[1]}"
            f" --share {shares[2]}) \\\n      {_remote_dir(root, config) / backup.name} | less\n"
            "Run the daemon (schedules, alerts, /metrics, the web dashboard) on it for a minute:\n"
            f"  sealbox demo --dir {root} --daemon 60\n"
            "Rebuild the appliance from its newest system backup:\n"
            f"  sealbox restore system latest --config {config_path} --target /tmp/rebuild \\\n"
            f"      --share {shares[0]} --share {shares[1]} --share {shares[2]} --database-files"
        )
        return report
