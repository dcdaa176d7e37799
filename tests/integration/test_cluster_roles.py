"""``[cluster] leader = "database"`` and ``"command"`` against real servers and a real script:
the node whose database is writable leads, and a command's exit status 0 means leader."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import pytest

from sealbox.config.load import validate
from sealbox.config.models import Config
from sealbox.errors import FencedError, SourceError
from sealbox.usecases.cluster import TOKEN_ENV, command_leads, database_leads, fence
from tests.servers import MariaDBServer


def _config(tmp_path: Path, cluster: str) -> Config:
    text = f"""
[appliance]
name = "pam-01"
state_dir = "{tmp_path / "state"}"
[destinations.offsite]
url = "file://{tmp_path / "remote"}"
allow_on_appliance = true
[cluster]
node = "pam-01a"
{cluster}
"""
    config, problems = validate(tomllib.loads(text))
    assert problems == [] and config is not None, problems
    return config


def _mariadb(sql: str) -> str:
    done = subprocess.run(
        ["mariadb", "--protocol=TCP", "-h127.0.0.1", "-uroot", "-N", "-B", "-e", sql],
        capture_output=True,
        check=True,
    )
    return done.stdout.decode().strip()


@pytest.mark.mariadb
def test_a_mariadb_in_read_only_mode_stands_by(tmp_path, monkeypatch):
    config = _config(
        tmp_path,
        'leader = "database"\n[cluster.database]\ntype = "mariadb"\n'
        'url = "mysql://root@127.0.0.1:3306/mysql"',
    )
    before = _mariadb("SELECT @@global.read_only")
    assert before == "0", "the shared MariaDB is read-only already: another test left it so?"
    assert database_leads(config) is True
    monkeypatch.setenv(TOKEN_ENV, "-")
    fence(config)  # a writable database: the run may publish
    try:
        _mariadb("SET GLOBAL read_only = 1")
        assert database_leads(config) is False
        with pytest.raises(FencedError, match="no longer the leader"):
            fence(config)
    finally:
        _mariadb(f"SET GLOBAL read_only = {before}")  # the server is shared: put it back at once
    assert database_leads(config) is True


@pytest.mark.postgres
def test_a_postgresql_primary_leads(tmp_path):
    config = _config(
        tmp_path,
        'leader = "database"\n[cluster.database]\ntype = "postgresql"\n'
        'url = "postgresql://postgres@127.0.0.1:5432/postgres"',
    )
    assert database_leads(config) is True  # pg_is_in_recovery() is false on a primary


def test_an_unreachable_database_is_an_error_not_a_role(tmp_path, monkeypatch):
    config = _config(
        tmp_path,
        'leader = "database"\n[cluster.database]\ntype = "postgresql"\n'
        'url = "postgresql://postgres@127.0.0.1:1/postgres"',
    )
    with pytest.raises(SourceError):
        database_leads(config)
    monkeypatch.setenv(TOKEN_ENV, "-")
    with pytest.raises(FencedError, match="cannot confirm it leads"):
        fence(config)


def test_a_command_exit_status_says_leader(tmp_path, monkeypatch):
    answer = tmp_path / "answer"
    script = tmp_path / "is-primary"
    script.write_text(f'#!/bin/sh\nexit "$(cat {answer})"\n')
    script.chmod(0o755)
    config = _config(tmp_path, f'leader = "command"\ncommand = ["{script}"]')
    answer.write_text("0")
    assert command_leads(config) is True
    answer.write_text("1")
    assert command_leads(config) is False
    monkeypatch.setenv(TOKEN_ENV, "-")
    with pytest.raises(FencedError, match="command says standby"):
        fence(config)
    monkeypatch.delenv(TOKEN_ENV)
    fence(config)  # a run started by hand (no token) is the operator's decision
    script.chmod(0o644)
    with pytest.raises(SourceError):
        command_leads(config)  # not executable: an error, never read as "leader"


@pytest.mark.mariadb
def test_a_real_mariadb_replica_stands_by_and_leads_once_promoted(tmp_path, mariadb_pair):
    primary, replica = mariadb_pair

    def node(server: MariaDBServer, name: str) -> Config:
        return _config(
            tmp_path / name,
            'leader = "database"\n[cluster.database]\ntype = "mariadb"\n'
            f'url = "mysql://root@127.0.0.1:{server.port}/pam"',
        )

    a, b = node(primary, "a"), node(replica, "b")
    assert replica.sql("SELECT @@global.read_only") == "0"  # only its replica status says standby
    assert (database_leads(a), database_leads(b)) == (True, False)
    # A failover: the old primary is made read-only, the replica is promoted.
    primary.sql("SET GLOBAL read_only = 1")
    replica.sql("STOP REPLICA; RESET REPLICA ALL")
    assert (database_leads(a), database_leads(b)) == (False, True)


@pytest.mark.postgres
def test_a_real_postgresql_standby_stands_by_and_leads_once_promoted(tmp_path, postgres_pair):
    def node(port: int, name: str) -> Config:
        return _config(
            tmp_path / name,
            'leader = "database"\n[cluster.database]\ntype = "postgresql"\n'
            f'url = "postgresql://postgres@127.0.0.1:{port}/postgres"',
        )

    a = node(postgres_pair.ports["primary"], "a")
    b = node(postgres_pair.ports["standby"], "b")
    assert (database_leads(a), database_leads(b)) == (True, False)  # pg_is_in_recovery()
    postgres_pair.promote()
    assert database_leads(b) is True
