"""The demo: build a demo appliance, run the product on it, and show what happened.

First run: the appliance, a 3-of-5 ceremony, the secrets backup, opening it with three shares.
Later runs are "the next day": passwords rotate, a new backup is made, the newest one is opened.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from rich.console import Console
from rich.table import Table

from sealbox import keys_ops, secrets_backup
from sealbox.breakglass import opener
from sealbox.config import load_config
from sealbox.demo import vault
from sealbox.keymaterial import from_share_files
from sealbox.keystore import Keystore

__all__ = ["DemoReport", "run_demo"]

T = TypeVar("T")
OPENING_SHARES = (1, 3, 5)


@dataclass
class DemoReport:
    first_run: bool
    steps: list[tuple[str, float, str]] = field(default_factory=list)


def _config_text(root: Path) -> str:
    cols = ", ".join(f'"{c}"' for c in vault.SECRET_COLUMNS)
    return f"""\
# Sealbox demo configuration, written by `sealbox demo`.
[appliance]
name = "demo-pam"
state_dir = "{root / "appliance" / "state"}"
var_dir = "{root / "appliance"}"

[destinations.remote]
url = "file://{root / "remote"}"
# The demo's "remote" directory sits on this machine's disk: allowed here, and every run says so.
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
        (root / "remote").mkdir(parents=True, exist_ok=True)
        config_path.write_text(_config_text(root), encoding="utf-8")
    else:
        console.print(f"[bold]Next day on the demo appliance in {root}[/]")
        step(
            "next day",
            "Rotate passwords (old values go to history)",
            lambda: vault.next_day(root / "appliance" / "vault.db"),
            lambda n: f"{n} passwords rotated",
        )
    config = load_config(config_path)
    keystore = Keystore(config.appliance.state_dir)
    if keystore.current() is None:
        result = step(
            "key ceremony",
            "Key ceremony: master key split 3-of-5 for the custodians",
            lambda: keys_ops.ceremony(
                keystore,
                appliance=config.appliance.name,
                total=5,
                threshold=3,
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
        files = opener.load_files(root / "remote" / backup.name)
        return opener.open_backup(
            files, from_share_files(shares, None), expected_signer=None, ignore_signature=False
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

    summary = Table(title="Sealbox demo summary")
    summary.add_column("step")
    summary.add_column("seconds", justify="right")
    summary.add_column("result")
    for title, seconds, text in report.steps:
        summary.add_row(title, f"{seconds:.2f}", text)
    console.print(summary)
    console.print(
        "Open it yourself, as a custodian would:\n"
        f"  sealbox breakglass open {root / 'remote' / backup.name} \\\n"
        f"      --share {shares[0]} --share {shares[1]} --share {shares[2]} search admin\n"
        "Or with the standard age tool:\n"
        f"  sealbox keys combine --share {shares[0]} --share {shares[1]} --share {shares[2]} --out identity.txt\n"
        f"  age -d -i identity.txt {root / 'remote' / backup.name} > secrets.json"
    )
    return report
