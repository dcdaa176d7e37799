"""The destination is a real network mount (sshfs over an sshd of the test's own) and its server is
killed in the middle of a system backup, as an operator's NAS would go away: the run fails with the
destination's exit code and one line that says the share was lost, alerts once, leaves what it was
writing for the next run to clean, and the first run after the server returns completes; `check`
finds the repository clean, and `--read-data` restores every byte."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sealbox.backends.local import TMP_STALE_AFTER
from sealbox.demo import appliance as demo_appliance
from sealbox.errors import DestinationError
from tests.conftest import make_appliance
from tests.daemons import DaemonProcess, daemon_config
from tests.mounts import SSHFSShare
from tests.receivers import SyslogReceiver, parse_rfc5424
from tests.servers import free_port


@pytest.fixture
def share(tmp_path):
    mounts = tmp_path / "mounts"
    mounts.mkdir()
    share = SSHFSShare(mounts)
    share.start_server()
    share.mount_share(reconnect=True)
    yield share
    share.close()


@pytest.fixture
def syslog():
    server = SyslogReceiver("tcp").start()
    yield server
    server.stop()


def _configure(tmp_path: Path, sealbox, share: SSHFSShare, syslog: SyslogReceiver):
    """The demo appliance backing up to the sshfs mount, alerting to ``syslog``; the share is
    off the appliance (a filesystem of its own), so ``allow_on_appliance`` is off as in
    production: a mount point left empty is the appliance's disk, and refused."""
    system = make_appliance(tmp_path / "pam", sealbox)
    demo_appliance.create_system(system.root)
    # Enough incompressible data for several 8 MiB packs: the server dies while they are written.
    big = system.root / "appliance" / "opt" / "recordings-archive.bin"
    big.write_bytes(os.urandom(40 << 20))
    text = system.config.read_text()
    local = f'url = "file://{system.root / "remote"}"'
    assert local in text
    text = text.replace(local, f'url = "file://{share.mount}/nas"')
    assert "allow_on_appliance = true" in text
    text = text.replace("allow_on_appliance = true", "allow_on_appliance = false")
    text += (
        f'\n[alerts]\nsyslog = {{ host = "127.0.0.1", port = {syslog.port}, transport = "tcp" }}\n'
    )
    system.config.write_text(text)
    return system


def _sealbox(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sealbox", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def _events(syslog: SyslogReceiver) -> list[str]:
    time.sleep(0.5)  # delivered before the run exits; the receiver's thread may trail a little
    return [parse_rfc5424(line)["msgid"] for line in syslog.messages]


def _leftovers(root: Path) -> list[Path]:
    return list(root.rglob(".tmp-*"))


@pytest.mark.parametrize("sshfs_mode", ["reconnect", "unmounts"])
def test_a_share_whose_server_dies_mid_backup_fails_cleanly_and_the_next_run_completes(
    tmp_path, sealbox, share, syslog, sshfs_mode
):
    """``reconnect``: sshfs stays mounted and answers EIO while the server is away, and
    reconnects when it returns. ``unmounts``: plain sshfs, which exits and unmounts when its
    connection dies, leaving the empty mount point (the appliance's own disk) at the path; the
    operator (or an automounter) mounts it again."""
    if sshfs_mode == "unmounts":
        share.unmount()
        share.mount_share(reconnect=False)
    system = _configure(tmp_path, sealbox, share, syslog)
    served = share.served / "nas" / "repo"

    backup = subprocess.Popen(
        [sys.executable, "-m", "sealbox", "backup", "system", "--config", str(system.config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Kill the server while a pack is being written (its temporary file is on the server).
    deadline = time.monotonic() + 120
    while not ((served / "data").is_dir() and any((served / "data").glob("*/.tmp-*"))):
        assert backup.poll() is None, f"the backup ended before the kill: {backup.stderr}"
        assert time.monotonic() < deadline, "no pack was started within 120 s"
        time.sleep(0.01)
    share.kill_server()
    _, err = backup.communicate(timeout=240)

    lines = err.strip().splitlines()
    assert backup.returncode == DestinationError.exit_code, err
    assert len(lines) == 1 and lines[0].startswith("sealbox: error: file://"), err
    assert f"file://{share.mount}/nas/repo: the share was lost" in lines[0]
    assert sshfs_mode == "reconnect" or list(share.mount.iterdir()) == []  # nothing on our disk
    assert "internal error" not in err and "Traceback" not in err
    events = _events(syslog)
    assert events.count("destination.unreachable") == 1, events
    assert events.count("backup.system.failed") == 1, events
    assert _leftovers(served), "the killed put left no temporary file to clean"

    # Still down: the next scheduled run fails the same way and does not alert again.
    again = _sealbox("backup", "system", "--config", system.config)
    assert again.returncode == DestinationError.exit_code, again.stderr
    said = "the share was lost" if sshfs_mode == "reconnect" else "is the share mounted?"
    assert said in again.stderr and len(again.stderr.strip().splitlines()) == 1, again.stderr
    assert _events(syslog).count("destination.unreachable") == 1
    if sshfs_mode == "unmounts":
        assert list(share.mount.iterdir()) == []  # no repository made on the mount point

    # The server returns (sshfs reconnects by itself, or is mounted again). The leftovers of
    # the killed run are an hour old by the time it is back.
    share.start_server()
    if sshfs_mode == "unmounts":
        share.unmount()
        share.mount_share(reconnect=False)
    old = time.time() - TMP_STALE_AFTER - 60
    for path in _leftovers(share.served):
        os.utime(path, (old, old))
    done = _sealbox("backup", "system", "--config", system.config, "--json")
    assert done.returncode == 0, done.stderr
    assert _leftovers(share.served) == []
    events = _events(syslog)
    assert events.count("destination.recovered") == 1, events
    assert events.count("destination.unreachable") == 1, events
    assert events[-2:] == ["backup.system.succeeded", "destination.recovered"], events

    check = _sealbox(
        "check", "--read-data", *system.share_args(1, 2, 3), "--config", system.config, "--json"
    )
    assert check.returncode == 0, check.stderr + check.stdout
    assert all(report["ok"] for report in json.loads(check.stdout).values())
    restored = tmp_path / "restored"
    restore = _sealbox(
        "restore",
        "system",
        "latest",
        "--target",
        restored,
        "--include",
        "*/recordings-archive.bin",
        *system.share_args(1, 2, 3),
        "--config",
        system.config,
    )
    assert restore.returncode == 0, restore.stderr
    (copy,) = restored.rglob("recordings-archive.bin")
    assert copy.read_bytes() == (system.root / "appliance/opt/recordings-archive.bin").read_bytes()


def test_a_dead_fuse_daemon_is_a_lost_share_for_every_command(tmp_path, sealbox, share, syslog):
    """The issue's own symptom: sshfs gone, the mount left behind, ENOTCONN everywhere. Every
    backup, copy, check, snapshots and restore says the share was lost (exit 7, one line); the
    probe reports it unreachable; status shows it and exits 0."""
    system = _configure(tmp_path, sealbox, share, syslog)
    (system.root / "appliance" / "recordings").mkdir(exist_ok=True)
    second = tmp_path / "second"
    second.mkdir()
    with system.config.open("a") as config_file:  # a copy from the share to a second place
        config_file.write(
            f'\n[destinations.second]\nurl = "file://{second}"\nallow_on_appliance = true\n'
            '\n[[copies]]\nfrom = "remote"\nto = "second"\n'
        )
    first = _sealbox("backup", "system", "--config", system.config)
    assert first.returncode == 0, first.stderr
    share.kill_client()
    config = ("--config", system.config)
    keys = system.share_args(1, 2, 3)
    for args in [
        ("backup", "system", *config),
        ("backup", "secrets", *config),
        ("backup", "recordings", *config),
        ("copy", *config),
        ("check", *config),
        ("snapshots", "--kind", "system", *config),
        ("restore", "system", "latest", "--target", tmp_path / "r", *keys, *config),
    ]:
        result = _sealbox(*args)
        assert result.returncode == DestinationError.exit_code, (args, result.stderr)
        assert "the share was lost" in result.stderr, (args, result.stderr)
        assert "Transport endpoint is not connected" in result.stderr, (args, result.stderr)
        assert "internal error" not in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
    # The first failed backup raised the condition; the others, and the probe, only count.
    assert _events(syslog).count("destination.unreachable") == 1
    probe = _sealbox("probe", "--json", *config)
    assert probe.returncode != 0 and "internal error" not in probe.stderr, probe.stderr
    results = {r["destination"]: r for r in json.loads(probe.stdout)}
    assert results["second"]["ok"], results
    assert not results["remote"]["ok"] and "the share was lost" in results["remote"]["error"]
    status = _sealbox("status", "--json", *config)
    assert "internal error" not in status.stderr and "Traceback" not in status.stderr
    assert status.returncode == 0 and "the share was lost" in status.stdout  # shown, not fatal
    events = _events(syslog)
    assert events.count("destination.unreachable") == 1, events


def test_a_daemon_job_on_a_lost_share_is_a_destination_failure_and_alerts_once(
    tmp_path, share, syslog
):
    """The daemon's system job, run now while the sshfs daemon is dead: the run is recorded as
    failed with the destination's one line (not a bug), the condition alerts once over two
    failed runs, and the run after the share is mounted again succeeds and clears it."""
    etc = tmp_path / "var" / "etc"
    etc.mkdir(parents=True)
    (etc / "app.conf").write_text("listen = 443\n" * 100)
    body = f"""
[system]
destination = "offsite"
schedule = "0 0 1 1 *"
paths = ["{etc}"]
"""
    port = free_port()
    config = daemon_config(tmp_path, port, body, syslog_port=syslog.port)
    text = config.read_text().replace(
        f'url = "file://{tmp_path / "remote"}"', f'url = "file://{share.mount}/nas"'
    )
    config.write_text(
        text.replace('[probes]\nschedule = "* * * * *"', '[probes]\nschedule = "0 0 1 1 *"')
    )
    (share.mount / "nas").mkdir()  # the probe at start never makes it
    daemon = DaemonProcess(config, port)
    auth = {"Authorization": "Bearer t0ken-for-tests"}

    def finished() -> list[dict]:
        return [r for r in daemon.history(job="system") if r["result"] != "running"]

    def idle() -> bool:  # no job under way (the catch-up system run and probe at start)
        runs = daemon.history()
        return len(runs) >= 2 and all(r["result"] != "running" for r in runs)

    def run_system() -> dict:
        """Run now (after any run under way, such as the daemon's catch-up at start) and wait
        for that run's outcome."""
        daemon.wait_for(idle, 120, "no system run under way")
        last = max((r["id"] for r in finished()), default=0)
        answer = httpx.post(f"{daemon.base}/api/run/system", headers=auth, timeout=10)
        assert answer.status_code == 202, answer.text
        runs = daemon.wait_for(
            lambda: [r for r in finished() if r["id"] > last], 120, "the system run"
        )
        return runs[0]

    try:
        daemon.wait_for(idle, 120, "the catch-up runs at start")
        assert all(r["result"] == "success" for r in daemon.history()), daemon.history()
        share.kill_client()
        for _ in (1, 2):
            run = run_system()
            assert run["result"] == "failed", run
            assert "the share was lost" in run["error"], run
            assert "Transport endpoint is not connected" in run["error"], run
            assert "internal error" not in run["error"], run
        syslog.wait(2)
        time.sleep(1)
        events = [parse_rfc5424(line)["msgid"] for line in syslog.messages]
        assert events.count("destination.unreachable") == 1, events
        assert events.count("backup.system.failed") == 1, events
        share.unmount()
        share.mount_share()
        run = run_system()
        assert run["result"] == "success", run
        time.sleep(1)
        events = [parse_rfc5424(line)["msgid"] for line in syslog.messages]
        assert events.count("destination.recovered") == 1, events
    finally:
        daemon.stop()


def test_a_recordings_run_whose_share_dies_midway_is_completed_by_the_next_run(
    tmp_path, sealbox, share, syslog
):
    """The recordings run (catalog, signed chain) loses its sshfs share while packs are being
    written; the run after the server returns stores every recording once and the chain
    verifies, every recording decrypting to its digest."""
    system = _configure(tmp_path, sealbox, share, syslog)
    day = system.root / "appliance" / "recordings" / "2026" / "11" / "30"
    day.mkdir(parents=True)
    old = time.time() - 86400
    for n in range(100):  # 30 MiB of finished recordings: several packs
        path = day / f"alice_srv-{n:03d}_sess-{n:04d}.rec"
        path.write_bytes(os.urandom(300_000))
        os.utime(path, (old, old))
    served = share.served / "nas" / "repo"
    run = subprocess.Popen(
        [sys.executable, "-m", "sealbox", "backup", "recordings", "--config", str(system.config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not ((served / "data").is_dir() and any((served / "data").glob("*/.tmp-*"))):
        assert run.poll() is None, f"the run ended before the kill: {run.stderr}"
        assert time.monotonic() < deadline, "no pack was started within 120 s"
        time.sleep(0.01)
    share.kill_server()
    _, err = run.communicate(timeout=240)
    assert run.returncode == DestinationError.exit_code, err
    assert len(err.strip().splitlines()) == 1 and "the share was lost" in err, err
    assert _events(syslog).count("destination.unreachable") == 1

    share.start_server()
    done = _sealbox("backup", "recordings", "--config", system.config, "--json")
    assert done.returncode == 0, done.stderr
    verify = _sealbox(
        "recordings",
        "verify",
        "--read-data",
        *system.share_args(1, 2, 3),
        "--config",
        system.config,
        "--json",
    )
    assert verify.returncode == 0, verify.stderr + verify.stdout
    report = json.loads(verify.stdout)
    assert report["ok"] and report["errors"] == [] and report["recordings"] == 100, report


def test_secrets_backups_and_copies_sweep_what_interrupted_runs_left(tmp_path, sealbox):
    """The other writing runs keep the same rule: an hour-old temporary file of ours goes, a
    recent one (a put under way) and anything else stay."""
    system = make_appliance(tmp_path, sealbox)
    demo_appliance.create_system(system.root)
    second = tmp_path / "second"
    second.mkdir()
    with system.config.open("a") as config_file:
        config_file.write(
            f'\n[destinations.second]\nurl = "file://{second}"\nallow_on_appliance = true\n'
            '\n[[copies]]\nfrom = "remote"\nto = "second"\nkinds = ["secrets", "system"]\n'
        )
    assert sealbox("backup", "system", "--config", system.config).code == 0
    (second / "repo" / "data" / "ab").mkdir(parents=True)
    old, now = time.time() - TMP_STALE_AFTER - 60, time.time()
    planted = {
        system.remote / ".tmp-00000000000000aa": old,  # swept by the secrets backup
        system.remote / ".tmp-00000000000000bb": now,  # a put under way: kept
        system.remote / "repo" / ".tmp-00000000000000cc": old,  # the repository's: not by it
        second / ".tmp-00000000000000dd": old,  # swept by the copy of the secrets backups
        second / "repo" / "data" / "ab" / ".tmp-00000000000000ee": old,  # by the repo copy
    }
    for path, mtime in planted.items():
        path.write_bytes(b"partial")
        os.utime(path, (mtime, mtime))
    assert sealbox("backup", "secrets", "--config", system.config).code == 0
    assert sorted(p.name[-2:] for p in planted if p.exists()) == ["bb", "cc", "dd", "ee"]
    copied = sealbox("copy", "--config", system.config)
    assert copied.code == 0, copied.err
    assert sorted(p.name[-2:] for p in planted if p.exists()) == ["bb", "cc"]
