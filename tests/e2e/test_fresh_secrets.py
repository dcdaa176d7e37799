"""Fresh secrets: the daemon polls a real database's change marker and backs up within max_lag of
an UPDATE, debounced, never more often than min_interval; the schedule stays the floor."""

from __future__ import annotations

import json
import secrets
import time

import pytest

from sealbox.daemon.watch import ChangePlan, plan_run
from tests.daemons import DaemonProcess, daemon_config
from tests.integration.test_database_dumps import _mysql
from tests.servers import free_port


def test_plan_waits_for_a_quiet_poll_but_never_past_max_lag_nor_inside_min_interval():
    burst = ChangePlan(first_change=1000.0, last_change=1000.0)
    assert plan_run(burst, None, 5, 300, 60) == 1010  # a whole quiet poll
    busy = ChangePlan(first_change=1000.0, last_change=1290.0)
    assert plan_run(busy, None, 30, 300, 60) == 1300  # max_lag caps the debounce
    assert plan_run(burst, 990.0, 5, 300, 60) == 1050  # min_interval after the last start
    late = ChangePlan(first_change=1000.0, last_change=1400.0)
    assert plan_run(late, None, 5, 300, 60) == 1300
    assert plan_run(late, 1280.0, 5, 300, 60) == 1340  # min_interval wins over max_lag


@pytest.mark.mariadb
def test_an_update_is_backed_up_within_max_lag(tmp_path):
    name = f"sbx_watch_{secrets.token_hex(4)}"
    _mysql(f"CREATE DATABASE {name}")
    try:
        _mysql(
            "CREATE TABLE items (id VARCHAR(20) PRIMARY KEY, name TEXT, password TEXT,"
            " updated_at DATETIME(6) NOT NULL)",
            name,
        )
        _mysql(
            "INSERT INTO items VALUES ('a', 'db a', 'one', NOW(6)), ('b', 'db b', 'two', NOW(6))",
            name,
        )
        body = f"""
[secrets]
destination = "offsite"
schedule = "0 0 1 1 *"
watch_seconds = 1
max_lag = "15s"
min_interval = "3s"
[[secrets.sources]]
type = "sql"
name = "vault"
url = "mysql+pymysql://root@127.0.0.1:3306/{name}"
query = "SELECT id, name, password, updated_at FROM items"
watch_query = "SELECT MAX(updated_at) FROM items"
columns = {{ secrets = ["password"], updated = "updated_at" }}
"""
        port = free_port()
        daemon = DaemonProcess(daemon_config(tmp_path, port, body), port)
        try:

            def runs() -> list[dict]:
                return [r for r in daemon.history(kind="secrets") if r["result"] != "running"]

            daemon.wait_for(lambda: len(runs()) == 1, 60, "the catch-up run")
            time.sleep(3)
            assert len(runs()) == 1  # nothing changed: no run
            _mysql(
                "UPDATE items SET password = 'rotated', updated_at = NOW(6) WHERE id = 'a'", name
            )
            changed = time.time()
            run = daemon.wait_for(lambda: runs()[0] if len(runs()) == 2 else None, 30, "a run")
            assert run["trigger"] == "change" and run["result"] == "success"
            assert run["started"] - changed < 15  # within max_lag
            assert run["started"] - runs()[1]["started"] >= 3  # min_interval

            # A burst of rotations makes one run, not one per UPDATE.
            time.sleep(3.5)
            for n in range(4):
                _mysql(
                    f"UPDATE items SET password = 'r{n}', updated_at = NOW(6) WHERE id = 'b'", name
                )
                time.sleep(0.3)
            daemon.wait_for(lambda: len(runs()) == 3, 30, "the burst's run")
            time.sleep(4)
            assert len(runs()) == 3

            status = daemon.get("/api/status").json()
            fresh = next(k for k in status["kinds"] if k["kind"] == "secrets")["fresh"]
            assert fresh["watching"] and fresh["error"] is None
            assert fresh["newest_change_backed_up"] and fresh["waiting_since"] is None
        finally:
            daemon.stop()
        backups = sorted((tmp_path / "remote").glob("secrets-*.age.changes.json"))
        assert len(backups) == 3
        newest = json.loads(backups[-1].read_text())
        assert [i[0] for i in newest["items"]] == ["a", "b"]
    finally:
        _mysql(f"DROP DATABASE IF EXISTS {name}")
