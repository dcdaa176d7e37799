"""Appliance clusters (``[cluster]``): two real daemons, two state dirs, one lease destination on
the real agent. Only the leader runs the schedules; a SIGKILLed leader is replaced within the
bound and no slot runs twice; a leader that was paused past its lease publishes nothing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher

from sealbox.backends import open_backend
from sealbox.destinations import lease
from sealbox.state.history import History
from tests.daemons import DaemonProcess, daemon_config
from tests.receivers import SyslogReceiver, parse_rfc5424
from tests.servers import free_port

LEASE_SECONDS = 15
# A standby looks every min(lease/3, 10) s and takes over after lease_seconds unchanged: at most
# the lease plus two looks after the leader's last renewal; issue 18 allows the lease plus 60 s.
BOUND = LEASE_SECONDS + 2 * (LEASE_SECONDS / 3) + 5  # + 5 s for the daemons' own work


def _node(root: Path, name: str, dest: str, body: str, syslog_port: int | None = None) -> Path:
    folder = root / name
    folder.mkdir()
    vault = folder / "vault.json"
    vault.write_text(json.dumps([{"id": "a", "type": "secret", "name": "t", "secret": {"k": "v"}}]))
    etc = folder / "var" / "etc"
    etc.mkdir(parents=True)
    (etc / "app.conf").write_text("listen = 443\n" * 100)
    return daemon_config(
        folder,
        free_port(),
        f"""
[destinations.shared]
url = "{dest}"
allow_on_appliance = true
[cluster]
node = "{name}"
lease_seconds = {LEASE_SECONDS}
"""
        + body.replace("{vault}", str(vault)).replace("{etc}", str(etc)),
        syslog_port,
    )


def _cluster(state: Path) -> dict | None:
    try:
        doc = json.loads((state / "daemon.json").read_text())
    except (OSError, ValueError):
        return None
    return doc.get("cluster")


def _wait(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _history(state: Path, kind: str) -> list[dict]:
    """A node's run history read from its state dir (a killed daemon answers no API)."""
    found = History(state, readonly=True)
    try:
        return found.runs(kind=kind)
    finally:
        found.close()


def _slot(started: float, per: str) -> str:
    when = datetime.fromtimestamp(started, UTC)
    return when.strftime("%Y-%m-%d %H:%M" if per == "minute" else "%Y-%m-%d %H")


FAILOVER_BODY = """
[secrets]
destination = "shared"
schedule = "* * * * *"
[[secrets.sources]]
type = "json"
path = "{vault}"
[system]
destination = "shared"
schedule = "0 * * * *"
paths = ["{etc}"]
[[daemon.users]]
name = "alice"
password_hash = "{hash}"
role = "viewer"
"""
PASSWORD = "a cluster test password"


def test_one_leader_runs_each_slot_once_and_a_killed_leader_is_replaced_in_time(
    tmp_path, agent_env
):
    if datetime.now(UTC).minute == 59:  # the hourly slot must not turn during the test
        time.sleep(61 - datetime.now(UTC).second)
    body = FAILOVER_BODY.replace("{hash}", PasswordHasher().hash(PASSWORD))
    siem = SyslogReceiver("tcp").start()
    configs = {n: _node(tmp_path, n, agent_env, body, siem.port) for n in ("a", "b")}
    daemons = {n: DaemonProcess(c, int(_port(c))) for n, c in configs.items()}
    try:
        states = {n: tmp_path / n / "state" for n in daemons}
        roles = _wait(
            lambda: (
                {n: (_cluster(s) or {}).get("role") for n, s in states.items()}
                if all(_cluster(s) for s in states.values())
                and "leader" in {(_cluster(s) or {}).get("role") for s in states.values()}
                else None
            ),
            BOUND,
            "a leader",
        )
        assert sorted(roles.values()) == ["leader", "standby"], roles  # exactly one won lease 1
        leader = next(n for n, r in roles.items() if r == "leader")
        standby = next(n for n in daemons if n != leader)
        first = daemons[leader]
        # The leader catches up both backups at once (they never ran in the cluster).
        _wait(
            lambda: {r["kind"] for r in first.history(result="success")} >= {"secrets", "system"},
            60,
            "the leader's first runs",
        )
        assert daemons[standby].history() == []  # the standby ran nothing
        refused = httpx.post(
            f"{daemons[standby].base}/api/run/secrets",
            headers={"Authorization": "Bearer t0ken-for-tests"},
            timeout=10,
        )
        assert refused.status_code == 409 and "stands by" in refused.text, refused.text
        # status --json, /api/status and /metrics say who leads, on both nodes.
        for name, daemon in daemons.items():
            view = daemon.get("/api/status").json()["cluster"]
            role = "leader" if name == leader else "standby"
            assert view["node"] == name and view["role"] == role and view["leader"] == leader
            assert view["since"], view
            metrics = daemon.get("/metrics").text
            flag = 1 if name == leader else 0
            assert f'sealbox_cluster_leader{{mode="lease",node="{name}"}} {flag}' in metrics
        cli = subprocess.run(
            [
                sys.executable,
                "-m",
                "sealbox",
                "--config",
                str(configs[standby]),
                "status",
                "--json",
            ],
            capture_output=True,
            check=False,
        )
        doc = json.loads(cli.stdout)["cluster"]
        assert (doc["node"], doc["role"], doc["leader"]) == (standby, "standby", leader), doc
        for name, daemon in daemons.items():  # the dashboard's overview, logged in
            html = _overview(daemon)
            role = "leader" if name == leader else "standby"
            assert f'id="cluster" data-role="{role}"' in html
            assert f"this node ({name}) is the {role}" in html and f"Leader: {leader}" in html
        first.stop(signal.SIGKILL)
        killed = time.monotonic()
        taken = _wait(
            lambda: (_cluster(states[standby]) or {}).get("role") == "leader",
            LEASE_SECONDS + 60,
            "the takeover",
        )
        took = time.monotonic() - killed
        print(f"takeover {took:.1f} s after the SIGKILL (bound {BOUND} s)")
        assert taken and took <= BOUND, f"took over after {took:.1f} s (bound {BOUND} s)"
        status = _cluster(states[standby])
        assert status["leader"] == standby and status["token"] == 2, status
        # The SIEM heard both takeovers (lease 1, then 2), event id 800, from the node taking over.
        changes = _wait(
            lambda: [
                m for m in siem.messages if parse_rfc5424(m)["msgid"] == "cluster.leader_changed"
            ][1:],
            30,
            "the cluster.leader_changed events",
        )
        assert "|800|cluster.leader_changed|" in changes[0]
        assert f"cluster leader is now {standby} (was {leader})" in changes[0]
        second = daemons[standby]
        # The new leader runs the next minute's secrets slot, and not the hourly system slot
        # (the killed leader ran it: the slot record came with the lease).
        _wait(
            lambda: [r for r in second.history(kind="secrets") if r["result"] != "running"],
            70,
            "the new leader's secrets run",
        )
        time.sleep(2)
        assert second.history(kind="system") == [], "the hourly slot ran twice"
        runs = [r for n in daemons for r in _history(states[n], "secrets")]
        slots = [_slot(r["started"], "minute") for r in runs]
        assert len(slots) == len(set(slots)), f"a secrets slot ran twice: {sorted(slots)}"
        # ... and none was skipped: a slot that passed during the failover ran once at the
        # takeover (catch-up), so the minutes from the first run to the last are all there.
        minutes = sorted(int(r["started"] // 60) for r in runs)
        assert minutes == list(range(minutes[0], minutes[-1] + 1)), sorted(slots)
        assert all(r["result"] == "success" for r in runs), runs
        backend = open_backend(agent_env)
        held = lease.current(backend)
        assert held is not None and (held.counter, held.node) == (2, standby)
        names = [o.name for o in backend.list("") if o.name.endswith(".age")]
        assert len(names) == len(runs), (names, runs)  # each run published exactly one backup
    finally:
        for daemon in daemons.values():
            daemon.stop()
        siem.stop()


def _overview(daemon: DaemonProcess) -> str:
    login = httpx.post(
        f"{daemon.base}/login",
        data={"user": "alice", "password": PASSWORD, "next": "/"},
        headers={"Origin": daemon.base},
        follow_redirects=False,
    )
    assert login.status_code == 303 and "error" not in login.headers["location"], login.headers
    cookie = login.headers["set-cookie"].split(";", 1)[0]
    return httpx.get(f"{daemon.base}/", headers={"Cookie": cookie}).text


def _port(config: Path) -> str:
    for line in config.read_text().splitlines():
        if line.startswith("listen = "):
            return line.rsplit(":", 1)[1].strip('"')
    raise AssertionError("no listen line")


SLOW_BODY = """
[secrets]
destination = "shared"
schedule = "0 0 1 1 *"
[[secrets.sources]]
type = "command"
command = ["{python}", "-c", "import time, json; time.sleep({sleep}); print(json.dumps([{'id': 'a', 'type': 'secret', 'name': 't', 'secret': {'k': 'v'}}]))"]
"""


def test_a_leader_paused_past_its_lease_publishes_nothing(tmp_path, agent_env):
    body = SLOW_BODY.replace("{python}", sys.executable).replace("{sleep}", "35")
    config_a = _node(tmp_path, "a", agent_env, body)
    a = DaemonProcess(config_a, int(_port(config_a)))
    b = None
    try:
        state_a = tmp_path / "a" / "state"
        _wait(lambda: (_cluster(state_a) or {}).get("role") == "leader", BOUND, "a to lead")
        run = _wait(lambda: a.history(kind="secrets"), 30, "a's secrets run")[0]
        assert run["result"] == "running"
        config_b = _node(tmp_path, "b", agent_env, body)
        b = DaemonProcess(config_b, int(_port(config_b)))
        # A paused daemon (a frozen VM, a stopped process) renews nothing; its job runs on.
        os.kill(a.proc.pid, signal.SIGSTOP)
        state_b = tmp_path / "b" / "state"
        try:
            _wait(lambda: (_cluster(state_b) or {}).get("role") == "leader", BOUND + 5, "b")
        finally:
            os.kill(a.proc.pid, signal.SIGCONT)
        done = _wait(
            lambda: [r for r in a.history(kind="secrets") if r["result"] != "running"],
            60,
            "a's run to end",
        )[0]
        assert done["result"] == "failed" and "lost the cluster lease" in done["error"], done
        backend = open_backend(agent_env)
        assert [o.name for o in backend.list("") if o.name.endswith((".age", ".sig"))] == []
        # b ran nothing either: a's start of that slot was recorded with lease 1, which b took.
        assert b.history(kind="secrets") == []
        _wait(lambda: (_cluster(state_a) or {}).get("role") == "standby", 20, "a to stand by")
    finally:
        a.stop()
        if b is not None:
            b.stop()


@pytest.mark.parametrize("race", [2, 5])
def test_racing_takeovers_have_exactly_one_winner(agent_env, race):
    """Standbys that all saw the lease expire take the next counter at once: one wins."""
    from concurrent.futures import ThreadPoolExecutor

    from sealbox.errors import ObjectExistsError

    backend = open_backend(agent_env)
    lease.take(backend, 1, "old")

    def attempt(n: int) -> str:
        try:
            lease.take(open_backend(agent_env), 2, f"node{n}")
        except ObjectExistsError:
            return "lost"
        return "won"

    with ThreadPoolExecutor(race) as pool:
        results = list(pool.map(attempt, range(race)))
    assert results.count("won") == 1, results
    held = lease.current(backend)
    assert held is not None and held.counter == 2


ASKED_BODY = """
[secrets]
destination = "shared"
schedule = "0 0 1 1 *"
[[secrets.sources]]
type = "json"
path = "{vault}"
"""


@pytest.mark.parametrize("mode", ["command", "database"])
def test_the_node_its_database_or_command_names_leads_and_a_slot_is_not_run_again(
    tmp_path, agent_env, mode, request
):
    """Two daemons whose role is asked: a real script's exit status, or a real MariaDB primary
    and its replica (two mariadbd started by the test). A failover moves the lead, and the new
    leader does not rerun the slot the old one ran (the shared slot record)."""
    if mode == "command":
        answers = {n: tmp_path / f"answer-{n}" for n in ("a", "b")}
        answers["a"].write_text("0")
        answers["b"].write_text("1")
        script = tmp_path / "is-primary"
        script.write_text('#!/bin/sh\nexit "$(cat "$1")"\n')
        script.chmod(0o755)
        role = {n: f'leader = "command"\ncommand = ["{script}", "{answers[n]}"]\n' for n in answers}
    else:
        primary, replica = request.getfixturevalue("mariadb_pair")
        role = {  # [cluster] keys, then its [cluster.database] table (before the body's tables)
            n: 'leader = "database"\ncheck_seconds = 1\n[cluster.database]\ntype = "mariadb"\n'
            f'url = "mysql://root@127.0.0.1:{server.port}/pam"\n'
            for n, server in (("a", primary), ("b", replica))
        }
    if mode == "command":
        role = {n: text + "check_seconds = 1\n" for n, text in role.items()}
    configs = {n: _node(tmp_path, n, agent_env, role[n] + ASKED_BODY) for n in ("a", "b")}
    daemons = {n: DaemonProcess(c, int(_port(c))) for n, c in configs.items()}
    states = {n: tmp_path / n / "state" for n in daemons}
    try:
        _wait(lambda: (_cluster(states["a"]) or {}).get("role") == "leader", 20, "a to lead")
        # b writes its role once its first look at its own database or command is done.
        _wait(lambda: (_cluster(states["b"]) or {}).get("role") == "standby", 20, "b to stand by")
        _wait(lambda: daemons["a"].history(result="success"), 60, "a's secrets run")
        if mode == "command":
            answers["a"].write_text("1")
            answers["b"].write_text("0")
        else:
            primary.sql("SET GLOBAL read_only = 1")
            replica.sql("STOP REPLICA; RESET REPLICA ALL")
        _wait(lambda: (_cluster(states["b"]) or {}).get("role") == "leader", 20, "b to lead")
        _wait(lambda: (_cluster(states["a"]) or {}).get("role") == "standby", 20, "a to stand by")
        time.sleep(3)  # b had its chance to (wrongly) catch the yearly slot up
        assert daemons["b"].history() == [], "the new leader ran a slot the old one had run"
        backend = open_backend(agent_env)
        assert len([o for o in backend.list("") if o.name.endswith(".age")]) == 1
    finally:
        for daemon in daemons.values():
            daemon.stop()


RECORDINGS_BODY = """
[recordings]
destination = "shared"
schedule = "0 0 1 1 *"
path = "{recordings}"
settle_seconds = 0
"""


def test_one_recordings_chain_continues_across_a_failover(tmp_path, agent_env, sealbox):
    """The new leader reads the chain's head from the destination (verifying the old leader's
    signature), not from its own catalog: it extends the same chain and stores nothing twice.
    The nodes share the recordings directory, the keystore (one appliance signing key) and the
    repository's writer key."""
    from sealbox.keys.store import Keystore

    recordings = tmp_path / "recordings"
    recordings.mkdir()
    (recordings / "s1.cast").write_bytes(b"session one\n" * 1000)
    body = RECORDINGS_BODY.replace("{recordings}", str(recordings))
    configs = {n: _node(tmp_path, n, agent_env, body) for n in ("a", "b")}
    states = {n: tmp_path / n / "state" for n in configs}
    Keystore(states["a"]).signing_key()  # the appliance key, copied to every node
    shutil.copytree(states["a"] / "keystore", states["b"] / "keystore")
    a = DaemonProcess(configs["a"], int(_port(configs["a"])))
    b = None
    try:
        _wait(lambda: (_cluster(states["a"]) or {}).get("role") == "leader", BOUND, "a to lead")
        first = _wait(lambda: a.history(kind="recordings", result="success"), 60, "a's run")[0]
        assert first["files"] == 1
        # The repository's writer key was made by the node that created the repository: the
        # others need it too (README, "Clusters").
        for writer in (states["a"] / "repos").glob("*/writer.txt"):
            target = states["b"] / "repos" / writer.parent.name
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(writer, target / "writer.txt")
        b = DaemonProcess(configs["b"], int(_port(configs["b"])))
        time.sleep(1)
        a.stop(signal.SIGKILL)
        _wait(lambda: (_cluster(states["b"]) or {}).get("role") == "leader", BOUND, "b to lead")
        (recordings / "s2.cast").write_bytes(b"session two\n" * 1000)
        answer = httpx.post(
            f"{b.base}/api/run/recordings",
            headers={"Authorization": "Bearer t0ken-for-tests"},
            timeout=10,
        )
        assert answer.status_code == 202, answer.text
        second = _wait(
            lambda: [r for r in b.history(kind="recordings") if r["result"] != "running"],
            60,
            "b's run",
        )[0]
        assert second["result"] == "success" and second["files"] == 1, second["error"]  # s2 only
        verified = sealbox("--config", configs["b"], "recordings", "verify", "--json")
        assert verified.code == 0, verified.out + verified.err
        report = json.loads(verified.out)
        assert report["last_seq"] == 2 and report["errors"] == [], report
    finally:
        for daemon in (a, b):
            if daemon is not None:
                daemon.stop()


def test_a_leader_stopped_with_sigterm_hands_over_at_the_next_look(tmp_path, agent_env):
    body = ASKED_BODY  # a yearly secrets backup: its destination holds the lease
    configs = {n: _node(tmp_path, n, agent_env, body) for n in ("a", "b")}
    states = {n: tmp_path / n / "state" for n in configs}
    a = DaemonProcess(configs["a"], int(_port(configs["a"])))
    _wait(lambda: (_cluster(states["a"]) or {}).get("role") == "leader", BOUND, "a to lead")
    b = DaemonProcess(configs["b"], int(_port(configs["b"])))
    try:
        _wait(lambda: (_cluster(states["b"]) or {}).get("leader") == "a", 20, "b to see a")
        a.stop(signal.SIGTERM)
        stopped = time.monotonic()
        _wait(lambda: (_cluster(states["b"]) or {}).get("role") == "leader", 20, "b to lead")
        took = time.monotonic() - stopped
        print(f"handover {took:.1f} s after SIGTERM")
        # Unreleased, b would wait lease_seconds from the last renewal it saw, and a renewed at
        # most lease/3 before it stopped: at least 10 s. Released: b's next look, within 5 s.
        assert took < LEASE_SECONDS * 2 / 3 - 1, f"{took:.1f} s: the lease was not released"
        # With no daemon on a, `sealbox status` says it stands by and reads the leader from the
        # lease at the destination.
        cli = subprocess.run(
            [sys.executable, "-m", "sealbox", "--config", str(configs["a"]), "status", "--json"],
            capture_output=True,
            check=False,
        )
        doc = json.loads(cli.stdout)["cluster"]
        assert (doc["node"], doc["role"], doc["leader"], doc["token"]) == ("a", "standby", "b", 2)
        table = subprocess.run(
            [sys.executable, "-m", "sealbox", "--config", str(configs["a"]), "status"],
            capture_output=True,
            check=False,
        ).stdout.decode()
        assert "cluster    node a is the standby; leader b since " in table, table
    finally:
        a.stop()
        b.stop()
