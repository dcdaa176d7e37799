"""A real ``sealbox daemon`` process for the tests, and the configs it runs."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx

RECIPIENT = "age1c980te9ahls34kt99kll9jj43l85gqmj83qnrchhpcuulw2hrussuwet0j"


class DaemonProcess:
    def __init__(self, config: Path, port: int, ca: Path | None = None) -> None:
        self.config, self.port = config, port
        self.base = f"{'https' if ca else 'http'}://127.0.0.1:{port}"
        self.verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(ca)) if ca else True
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sealbox", "daemon", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited: {self.proc.stderr.read().decode()}")
            try:
                answer = httpx.get(f"{self.base}/healthz", timeout=1, verify=self.verify)
                if answer.status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError("daemon did not answer")

    def get(self, path: str, **kw) -> httpx.Response:
        return httpx.get(f"{self.base}{path}", timeout=30, verify=self.verify, **kw)

    def history(self, **params) -> list[dict]:
        return self.get("/api/history", params=params).json()["runs"]

    def wait_for(self, predicate, seconds: float, what: str):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.25)
        raise AssertionError(f"timed out waiting for {what}: {self.history()}")

    def stop(self, sig: int = signal.SIGTERM) -> float:
        started = time.monotonic()
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return time.monotonic() - started


def appliance_toml(tmp_path: Path, var_dir: Path) -> str:
    """The [appliance] section of a test config, its state under ``tmp_path``."""
    return f"""
[appliance]
name = "pam-01"
state_dir = "{tmp_path / "state"}"
var_dir = "{var_dir}"
"""


def daemon_config(
    tmp_path: Path,
    port: int,
    body: str,
    syslog_port: int | None = None,
    daemon_extra: str = "",
    host: str = "127.0.0.1",
) -> Path:
    token = tmp_path / "daemon.token"
    token.write_text("t0ken-for-tests\n")
    (tmp_path / "remote").mkdir(exist_ok=True)
    alerts = (
        f'[alerts]\nsyslog = {{ host = "127.0.0.1", port = {syslog_port}, transport = "tcp",'
        ' format = "cef" }\n'
        if syslog_port
        else ""
    )
    path = tmp_path / "sealbox.toml"
    path.write_text(
        appliance_toml(tmp_path, tmp_path / "var")
        + f"""
[keys]
recipients = ["{RECIPIENT}"]
[destinations.offsite]
url = "file://{tmp_path / "remote"}"
allow_on_appliance = true
[probes]
schedule = "* * * * *"
[daemon]
listen = "{host}:{port}"
token_file = "{token}"
{daemon_extra}
check_schedule = ""
stop_timeout_seconds = 10
{alerts}
{body}
"""
    )
    return path


def kinds_config(tmp_path: Path, schedule: str = "* * * * *") -> str:
    vault = tmp_path / "vault.json"
    vault.write_text(json.dumps([{"id": "a", "type": "secret", "name": "t", "secret": {"k": "v"}}]))
    etc = tmp_path / "var" / "etc"
    etc.mkdir(parents=True)
    (etc / "app.conf").write_text("listen = 443\n" * 100)
    return f"""
[secrets]
destination = "offsite"
schedule = "{schedule}"
[[secrets.sources]]
type = "json"
path = "{vault}"
[system]
destination = "offsite"
schedule = "{schedule}"
paths = ["{etc}"]
[recordings]
destination = "offsite"
schedule = "{schedule}"
path = "{tmp_path / "no-such-recordings"}"
"""


def secrets_from_command(code: str, schedule: str) -> str:
    """A [secrets] section whose one source is ``python -c CODE`` (a slow or dying job)."""
    return f"""
[secrets]
destination = "offsite"
schedule = "{schedule}"
[[secrets.sources]]
type = "command"
command = ["{sys.executable}", "-c", "{code}"]
"""
