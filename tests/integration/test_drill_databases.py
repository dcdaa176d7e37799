"""The drill's database side against real servers: a loaded database compared with what its
dump declares (a missing table, a row count off by one), and the temporary server instances a
drill starts when it was given no scratch server."""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import pytest

from sealbox.config.models import DatabaseConfig
from sealbox.databases import database_for
from sealbox.databases.declared import Declared
from sealbox.databases.scratch import parse_scratch, temporary_server
from sealbox.errors import ConfigError, SourceError
from sealbox.usecases.drill import compare_loaded
from tests.integration.test_database_dumps import _mysql, _psql

pytestmark = [pytest.mark.postgres, pytest.mark.mariadb]


@pytest.fixture
def pg_db():
    name = f"sbx_cmp_{secrets.token_hex(4)}"
    _psql(f"CREATE DATABASE {name}")
    _psql(
        'CREATE TABLE t (x int); INSERT INTO t VALUES (1),(2),(3); CREATE TABLE "Odd" (y int);',
        name,
    )
    yield name
    _psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def my_db():
    name = f"sbx_cmp_{secrets.token_hex(4)}"
    _mysql(f"CREATE DATABASE {name}")
    _mysql(
        "CREATE TABLE t (x INT); INSERT INTO t VALUES (1),(2),(3); CREATE TABLE `o``dd` (y INT)",
        name,
    )
    yield name
    _mysql(f"DROP DATABASE IF EXISTS {name}")


def _handler(kind: str, url: str):
    return database_for(DatabaseConfig(type=kind, url=url), 1)


def test_postgresql_loaded_tables_are_compared_with_the_declaration(pg_db):
    handler = _handler("postgresql", f"postgresql://postgres@127.0.0.1:5432/{pg_db}")
    server = parse_scratch("postgresql://postgres@127.0.0.1:5432")
    same = Declared({"public.t": 3, 'public."Odd"': 0})
    assert compare_loaded("pg", handler, same, server, 1).result == "passed"
    off = compare_loaded("pg", handler, Declared({"public.t": 4, 'public."Odd"': 0}), server, 1)
    assert off.result == "failed" and "public.t: 3 rows, the dump loads 4" in off.detail
    gone = compare_loaded("pg", handler, Declared({"public.t": 3, "public.gone": 0}), server, 1)
    assert gone.result == "failed" and "public.gone missing" in gone.detail


def test_mariadb_loaded_tables_are_compared_with_the_declaration(my_db):
    handler = _handler("mariadb", f"mysql://root@127.0.0.1:3306/{my_db}")
    server = parse_scratch("mysql://root@127.0.0.1:3306")
    same = Declared({"`t`": 3, "`o``dd`": 0})
    assert compare_loaded("my", handler, same, server, 1).result == "passed"
    off = compare_loaded("my", handler, Declared({"`t`": 2, "`o``dd`": 0}), server, 1)
    assert off.result == "failed" and "`t`: 3 rows, the dump loads 2" in off.detail
    handler.drop()
    assert my_db not in _mysql("SHOW DATABASES")


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_a_temporary_server_has_no_listener_runs_unprivileged_and_leaves_nothing(kind):
    """Only through its Unix socket, in a 0700 directory of the server's own account: no other
    local user reaches it or stands in for it (a TCP port anyone could connect to, as
    superuser, was the first version's flaw)."""
    if os.geteuid() != 0:
        with pytest.raises(SourceError, match="run the drill as root"), temporary_server(kind):
            pass
        return
    with temporary_server(kind) as scratch:
        socket = scratch.query.split("=", 1)[1]
        if kind == "postgresql":
            argv = ["psql", "-h", socket, "-p", "5432", "-U", "postgres", "-XtAc"]
            queries = ["SHOW listen_addresses", "SELECT current_setting('data_directory')"]
        else:
            argv = ["mariadb", "--protocol=SOCKET", f"--socket={socket}", "-uroot", "-NBe"]
            queries = ["SELECT @@skip_networking", "SELECT @@datadir"]
        answers = [
            subprocess.run([*argv, q], capture_output=True, text=True, check=True).stdout.strip()
            for q in queries
        ]
        assert answers[0] in ("", "1")  # no address listened on / networking skipped
        data = Path(answers[1].rstrip("/"))
        home = data.parent
        assert home.name.startswith(f"sealbox-scratch-{kind}-")
        assert home.stat().st_mode & 0o777 == 0o700 and home.stat().st_uid != 0
        assert data.stat().st_uid != 0  # the server's account owns its data, not root
    assert not home.exists()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@127.0.0.1:5432/production",
        "https://example.org",
        "mysql://root@127.0.0.1?x=1",
        "postgresql://u:p@ss@host:1",
    ],
)
def test_scratch_urls_name_a_server_only(url):
    with pytest.raises(ConfigError):
        parse_scratch(url)
