"""``sealbox daemon`` as a real process: schedules, catch-up, history, API, /metrics, alerts,
SIGHUP and SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import httpx
import pytest

from sealbox.daemon.jobs import Job, outcome_of
from sealbox.daemon.metrics import Metric, render
from sealbox.daemon.schedule_plan import first_due, next_due
from sealbox.state.history import History
from tests.daemons import DaemonProcess, daemon_config, kinds_config, secrets_from_command
from tests.receivers import SyslogReceiver, parse_rfc5424
from tests.servers import free_port


# -- pure parts ---------------------------------------------------------------------------------
def _utc(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


def test_catch_up_runs_once_whatever_was_missed():
    job = Job("system", "0 * * * *", True)
    now = _utc("2026-11-26 10:30")
    assert first_due(job, _utc("2026-11-26 09:00"), now) == (now, "catch-up")
    assert first_due(job, _utc("2026-11-20 09:00"), now) == (now, "catch-up")  # days missed: once
    assert first_due(job, _utc("2026-11-26 10:00"), now) == (_utc("2026-11-26 11:00"), "schedule")
    assert first_due(job, None, now) == (now, "catch-up")
    weekly = Job("check", "0 3 * * 0", False)
    assert first_due(weekly, None, now)[1] == "schedule"  # a check that never ran waits its slot
    # A run that overran three slots is followed by the next slot after now, not three runs.
    assert next_due(job, _utc("2026-11-26 07:00"), now) == _utc("2026-11-26 11:00")


def test_job_outcomes_from_child_output():
    ok = outcome_of("system", 0, b'{"bytes_added": 5, "files": 2, "snapshot": "ab"}', b"")
    assert (ok.result, ok.bytes, ok.files, ok.snapshot) == ("success", 5, 2, "ab")
    bad = outcome_of("secrets", 7, b"", b"warning: x\nsealbox: error: cannot reach it\n")
    assert (bad.result, bad.error) == ("failed", "cannot reach it")
    assert outcome_of("system", 130, b"", b"sealbox: interrupted\n").result == "interrupted"
    assert outcome_of("probe", -9, b"", b"").result == "interrupted"


def test_history_recovers_runs_a_dead_daemon_left(tmp_path):
    history = History(tmp_path)
    left = history.start("system", "schedule")
    done = history.start("secrets", "manual")
    history.finish(done, "success", bytes_=10, files=1)
    history.close()
    again = History(tmp_path)
    assert again.recover() == 1
    row = again.runs(kind="system")[0]
    assert row["id"] == left and row["result"] == "interrupted" and row["ended"]
    assert again.last("secrets", "success")["bytes"] == 10
    with pytest.raises(ValueError, match="final"):
        again.finish(left, "running")


def test_metrics_text_format():
    m = Metric("sealbox_x_seconds", "Help text.", "gauge")
    m.add(1.5, kind='a"b')
    m.add(None, kind="skipped")
    m.add(3, kind="c")
    assert render([m]) == (
        "# HELP sealbox_x_seconds Help text.\n# TYPE sealbox_x_seconds gauge\n"
        'sealbox_x_seconds{kind="a\\"b"} 1.5\nsealbox_x_seconds{kind="c"} 3\n'
    )


def test_daemon_runs_reports_and_reloads(tmp_path, sealbox):
    siem = SyslogReceiver("tcp").start()
    port = free_port()
    config = daemon_config(tmp_path, port, kinds_config(tmp_path), siem.port)
    daemon = DaemonProcess(config, port)
    try:
        # Nothing ever ran here: every backup and the probe catch up at once.
        def first_round():
            runs = {r["kind"]: r for r in daemon.history() if r["result"] != "running"}
            return runs if len(runs) == 4 else None

        runs = daemon.wait_for(first_round, 60, "the first runs")
        assert {k: r["result"] for k, r in runs.items()} == {
            "secrets": "success",
            "system": "success",
            "recordings": "failed",  # its path is missing: one job failing stops no other
            "probe": "success",
        }
        assert all(r["trigger"] == "catch-up" for r in runs.values())
        assert "no-such-recordings" in runs["recordings"]["error"]
        assert runs["system"]["files"] >= 1 and runs["secrets"]["bytes"] > 0

        # The child's alert for the failed kind reached the SIEM.
        names = {parse_rfc5424(m)["msgid"] for m in siem.wait(4)}
        assert "backup.recordings.failed" in names and "backup.system.succeeded" in names

        metrics = daemon.get("/metrics").text
        assert 'sealbox_last_success_timestamp_seconds{kind="system"}' in metrics
        # (scheduled runs at a minute boundary may have added more failures by now)
        assert re.search(r'sealbox_runs_total\{kind="recordings",result="failed"\} [1-9]', metrics)
        assert 'sealbox_destination_up{destination="offsite"} 1' in metrics
        assert 'sealbox_destination_capacity_ratio{destination="offsite"}' in metrics
        assert "sealbox_last_run_duration_seconds" in metrics

        status = json.loads(sealbox("status", "--json", "--config", config).out)
        kinds = {k["kind"]: k for k in status["kinds"]}
        assert kinds["system"]["last_success"]  # (its newest run may be a scheduled one going)
        assert kinds["system"]["last_run"]["result"] in ("success", "running")
        assert status["daemon"]["pid"] == daemon.proc.pid
        api = daemon.get("/api/status").json()
        assert api["daemon"]["jobs"]["system"]["schedule"] == "* * * * *"

        # Run-now needs the token; a job cannot run twice at once.
        assert httpx.post(f"{daemon.base}/api/run/system", timeout=10).status_code == 401
        auth = {"Authorization": "Bearer t0ken-for-tests"}

        def run_now():  # a scheduled system run may be going at a minute boundary: then 409
            answer = httpx.post(f"{daemon.base}/api/run/system", headers=auth, timeout=10)
            assert answer.status_code in (202, 409), answer.text
            return answer if answer.status_code == 202 else None

        daemon.wait_for(run_now, 30, "run-now accepted")
        again = httpx.post(f"{daemon.base}/api/run/system", headers=auth, timeout=10)
        assert again.status_code in (202, 409)  # 409 unless the first one already finished
        assert (
            httpx.post(f"{daemon.base}/api/run/nope", headers=auth, timeout=10).status_code == 404
        )
        daemon.wait_for(
            lambda: any(
                r["trigger"] == "manual" and r["result"] == "success"
                for r in daemon.history(kind="system")
            ),
            60,
            "the manual run",
        )

        # The schedule itself: a run at the next minute boundary.
        daemon.wait_for(
            lambda: any(r["trigger"] == "schedule" for r in daemon.history(kind="secrets")),
            75,
            "a scheduled run",
        )

        # SIGHUP: a broken config is refused and the old one kept; a good one is taken.
        text = config.read_text()
        config.write_text(text + "\n[bogus]\n")
        os.kill(daemon.proc.pid, signal.SIGHUP)
        daemon.wait_for(
            lambda: daemon.get("/api/status").json()["daemon"]["last_reload_error"], 10, "refusal"
        )
        assert daemon.proc.poll() is None
        start = text.index("[recordings]")
        config.write_text(text[:start])
        os.kill(daemon.proc.pid, signal.SIGHUP)
        daemon.wait_for(
            lambda: "recordings" not in daemon.get("/api/status").json()["daemon"]["jobs"],
            10,
            "the reload",
        )
    finally:
        seconds = daemon.stop()
        siem.stop()
    assert seconds < 15 and daemon.proc.returncode == 0
    history = History(tmp_path / "state")
    assert not history.runs(result="running")


def test_sigterm_stops_a_running_job_safely(tmp_path):
    port = free_port()
    body = secrets_from_command("import time; time.sleep(60)", "* * * * *")
    daemon = DaemonProcess(daemon_config(tmp_path, port, body), port)
    daemon.wait_for(
        lambda: any(r["result"] == "running" for r in daemon.history(kind="secrets")),
        30,
        "the slow run",
    )
    auth = {"Authorization": "Bearer t0ken-for-tests"}
    again = httpx.post(f"{daemon.base}/api/run/secrets", headers=auth, timeout=10)
    assert again.status_code == 409 and "running already" in again.text  # never two at once
    time.sleep(1)
    seconds = daemon.stop()
    assert seconds < 10, "SIGTERM stops within seconds"
    assert daemon.proc.returncode == 0
    history = History(tmp_path / "state")
    [run] = history.runs(kind="secrets")
    assert run["result"] == "interrupted" and run["ended"] >= run["started"]
    assert list((tmp_path / "remote").glob("secrets-*")) == []  # nothing half-published
    assert not (tmp_path / "state" / "daemon.json").exists()


def test_daemon_refuses_a_bad_config_and_a_taken_port(tmp_path, sealbox):
    bad = tmp_path / "bad.toml"
    bad.write_text('[appliance]\nname = "x"\nstate_dir = "/tmp/x"\n[daemon]\nlisten = "nope"\n')
    result = sealbox("daemon", "--config", bad)
    assert result.code == 3 and "daemon.listen" in result.err
    port = free_port()
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "sealbox",
                "daemon",
                "--config",
                str(daemon_config(tmp_path, port, "")),
            ],
            capture_output=True,
            timeout=60,
            check=False,
        )
    assert done.returncode != 0 and b"Traceback" not in done.stderr
    assert str(port).encode() in done.stderr


ANY_ADDRESS = "0.0.0.0"  # noqa: S104 - the point of the test: a listener off loopback


def test_daemon_over_https_needs_the_token_off_loopback(tmp_path):
    from tests.servers import self_signed

    cert, key = self_signed(tmp_path)
    port = free_port()
    config = daemon_config(
        tmp_path,
        port,
        "",
        daemon_extra=f'tls_cert = "{cert}"\ntls_key = "{key}"',
        host=ANY_ADDRESS,
    )
    daemon = DaemonProcess(config, port, ca=cert)
    try:
        assert daemon.get("/api/status").status_code == 401  # reads need the token here
        auth = {"Authorization": "Bearer t0ken-for-tests"}
        status = daemon.get("/api/status", headers=auth)
        assert status.status_code == 200
        assert status.json()["daemon"]["listen"] == f"{ANY_ADDRESS}:{port}"
        assert daemon.get("/metrics", headers=auth).status_code == 200
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)  # no plain HTTP
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"https://127.0.0.1:{port}/healthz", timeout=5)  # an unknown CA: refused
    finally:
        daemon.stop()


def test_a_killed_job_is_a_failure_with_an_alert(tmp_path):
    """A job that dies by a signal (the OOM killer, a kill -9) cannot alert by itself: the daemon
    records it as failed and sends the failure event; the daemon itself carries on."""
    siem = SyslogReceiver("tcp").start()
    port = free_port()
    body = secrets_from_command("import os, signal; os.killpg(0, signal.SIGKILL)", "0 0 1 1 *")
    daemon = DaemonProcess(daemon_config(tmp_path, port, body, siem.port), port)
    try:
        run = daemon.wait_for(
            lambda: next(
                (r for r in daemon.history(kind="secrets") if r["result"] != "running"), None
            ),
            30,
            "the killed run",
        )
        assert run["result"] == "failed" and "signal 9 (SIGKILL)" in run["error"]
        events = [parse_rfc5424(m) for m in siem.wait(1)]
        assert [e["msgid"] for e in events] == ["backup.secrets.failed"]
        assert "SIGKILL" in events[0]["msg"]
        assert daemon.get("/healthz").status_code == 200  # the daemon carries on
    finally:
        daemon.stop()
        siem.stop()


def test_a_copy_runs_after_each_backup_it_copies(tmp_path, sealbox):
    port = free_port()
    second = tmp_path / "second"
    second.mkdir()
    body = kinds_config(tmp_path, schedule="0 0 1 1 *").split("[recordings]")[0] + (
        f'\n[destinations.second]\nurl = "file://{second}"\nallow_on_appliance = true\n'
        '\n[[copies]]\nfrom = "offsite"\nto = "second"\nkinds = ["system"]\n'
    )
    daemon = DaemonProcess(daemon_config(tmp_path, port, body), port)
    try:
        copies = daemon.wait_for(
            lambda: [
                r for r in daemon.history() if r["kind"] == "copy" and r["result"] != "running"
            ],
            90,
            "a copy after the system backup",
        )
        assert [(r["trigger"], r["result"]) for r in copies] == [("after system", "success")]
        assert copies[0]["files"] > 0 and copies[0]["bytes"] > 0
        assert (second / "repo" / "config").exists()
        assert not list(second.glob("secrets-*")), "only the kinds the copy names"
        runs = daemon.history()
        assert not [r for r in runs if r["kind"] == "copy" and r["trigger"] == "after secrets"]
        metrics = daemon.get("/metrics").text
        assert 'sealbox_copy_lag_snapshots{kind="system",to="second"} 0' in metrics
        assert 'sealbox_last_success_timestamp_seconds{kind="copy"}' in metrics
        # The dashboard's overview shows the copy's lag (logged in with the API token).
        login = httpx.post(
            f"{daemon.base}/login",
            data={"user": "", "password": "t0ken-for-tests", "next": "/"},
            headers={"Origin": daemon.base},
            timeout=30,
        )
        assert login.status_code == 303, login.text
        cookie = login.headers["set-cookie"].split(";")[0]
        page = httpx.get(f"{daemon.base}/", headers={"Cookie": cookie}, timeout=30).text
        assert 'data-to="second">0 behind' in page
        # The Snapshots page: copied, and held once a hold is added.
        config = tmp_path / "sealbox.toml"
        snapshot = copies[0]  # (any row: the page lists the one system snapshot)
        rows = httpx.get(
            f"{daemon.base}/snapshots?kind=system", headers={"Cookie": cookie}, timeout=30
        ).text
        assert '<td class="copied">second</td>' in rows and '<td class="held">-</td>' in rows
        snap_id = json.loads(sealbox("snapshots", "--config", config, "--json").out)[0]["id"]
        assert sealbox("hold", "add", snap_id, "--reason", "audit 9", "--config", config).code == 0
        rows = httpx.get(
            f"{daemon.base}/snapshots?kind=system", headers={"Cookie": cookie}, timeout=30
        ).text
        assert f'data-id="{snap_id}"' in rows and "held (audit 9)" in rows
        assert snapshot["result"] == "success"
    finally:
        daemon.stop()
