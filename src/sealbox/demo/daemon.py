"""``sealbox demo --daemon SECONDS``: the daemon on the demo appliance for a while, then status.

The demo's config gets a ``[daemon]`` section on a free loopback port (in a copy next to it, so
the demo's own config stays as written); every job catches up at start (a daemon never ran here),
the runs are printed as they end, then ``sealbox status`` and a few lines of ``/metrics``.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from rich.console import Console

from sealbox.config.load import load_config
from sealbox.daemon.jobs import jobs_of
from sealbox.demo.run import free_port, serving_agent
from sealbox.errors import ConfigError, SealboxError

__all__ = ["run_daemon_demo"]


CATCH_UP_GRACE = 180.0


def run_daemon_demo(root: Path, console: Console, seconds: int) -> None:
    """Run the daemon on the demo for ``seconds`` (and until every catch-up job reported), then
    show its status and metrics."""

    root = root.absolute()
    source = root / "sealbox.toml"
    if not source.exists():
        raise ConfigError(f"no demo in {root}: run `sealbox demo --dir {root}` first")
    text = source.read_text()
    if "[daemon]" in text:
        raise ConfigError(f"{source} has its own [daemon] section: run `sealbox daemon` on it")
    port = free_port()
    derived = root / "sealbox-daemon.toml"
    token_file = root / "appliance" / "daemon.token"
    token = secrets.token_urlsafe(24)
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    derived.write_text(
        text + f'\n[daemon]\nlisten = "127.0.0.1:{port}"\ntoken_file = "{token_file}"\n'
        'check_schedule = "*/2 * * * *"\n'
    )
    config = load_config(derived)
    base = f"http://127.0.0.1:{port}"
    with serving_agent(root, config.destinations["remote"].url):
        proc = subprocess.Popen(
            [sys.executable, "-m", "sealbox", "daemon", "--config", str(derived)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            _wait_ready(proc, base)
            console.print(
                f"[bold cyan]>[/] sealbox daemon on {base} for {seconds} s"
                " (status, history, /metrics; every job catches up at start) ..."
            )
            console.print(
                f"  dashboard: {base}/ (leave the name empty; password: the token in {token_file})",
                markup=False,
            )
            seen: set[int] = set()
            reported: set[str] = set()
            # The jobs that catch up at start: the status below waits for their outcome (up
            # to CATCH_UP_GRACE past the time asked for, on a slow machine).
            catching_up = {n for n, job in jobs_of(config).items() if job.catch_up_never_run}
            deadline = time.monotonic() + seconds
            while proc.poll() is None:
                runs = httpx.get(f"{base}/api/history", timeout=10).json()["runs"]
                for run in reversed(runs):
                    if run["result"] != "running" and run["id"] not in seen:
                        seen.add(run["id"])
                        reported.add(run["kind"])
                        _print_run(console, run)
                now = time.monotonic()
                if now >= deadline and (
                    catching_up <= reported or now >= deadline + CATCH_UP_GRACE
                ):
                    break
                time.sleep(1)
            status = subprocess.run(
                [sys.executable, "-m", "sealbox", "status", "--config", str(derived)],
                capture_output=True,
                text=True,
                check=False,
            )
            console.print("[bold cyan]>[/] sealbox status")
            console.print(status.stdout.rstrip(), markup=False)
            if status.stderr.strip():
                console.print(status.stderr.rstrip(), markup=False)
            metrics = httpx.get(f"{base}/metrics", timeout=10).text.splitlines()
            console.print(f"[bold cyan]>[/] {base}/metrics (excerpt)")
            for line in metrics:
                if line.startswith(("sealbox_last_success", "sealbox_destination_up")):
                    console.print(f"  {line}", markup=False)
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
    console.print(
        f"Daemon stopped (SIGTERM). Run it yourself (with `sealbox demo --dir {root} --serve`"
        f" in another terminal for the agent): sealbox daemon --config {derived}"
    )


def _wait_ready(proc: subprocess.Popen[bytes], base: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            message = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise SealboxError(f"the daemon did not start: {message.strip()[-300:]}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SealboxError("the daemon did not answer within 30 s")


def _print_run(console: Console, run: dict[str, object]) -> None:
    started = float(run["started"])  # type: ignore[arg-type]
    ended = float(run["ended"])  # type: ignore[arg-type]
    when = datetime.fromtimestamp(started, UTC).strftime("%H:%M:%S")
    what = f"{run['kind']:<10} {run['trigger']:<8} {run['result']:<11} {ended - started:6.1f} s"
    extra = f"  {run['error']}" if run.get("error") else ""
    size = f"  {run['bytes']:,} bytes" if run.get("bytes") else ""
    console.print(f"  {when} {what}{size}{extra}", markup=False)
