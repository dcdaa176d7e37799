"""Live dumps against the real MariaDB and PostgreSQL servers (and SQLite), with a writer running
during the backup: the dump holds whole transactions only, and loads back."""

from __future__ import annotations

import secrets
import sqlite3
import subprocess
import threading
import time

import pytest

from sealbox.config.models import DatabaseConfig
from sealbox.databases import database_for
from sealbox.errors import SourceError
from sealbox.repo.backup import run_backup
from sealbox.repo.restore import plan_restore
from tests.conftest import IN_CI

ROWS = 60_000


def _mysql(sql: str, db: str = "") -> str:
    argv = ["mariadb", "--protocol=TCP", "-h127.0.0.1", "-uroot", "-N", "-B", "-e", sql] + (
        [db] if db else []
    )
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        if IN_CI:
            raise AssertionError(done.stderr)
        pytest.skip(f"MariaDB not reachable: {done.stderr.strip()}")
    return done.stdout


def _psql(sql: str, db: str = "postgres") -> str:
    done = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-tAqc", sql],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        if IN_CI:
            raise AssertionError(done.stderr)
        pytest.skip(f"PostgreSQL not reachable: {done.stderr.strip()}")
    return done.stdout


def _dump_bytes(env, tmp_path, db) -> bytes:
    """Back the database up through the real pipeline and read the stored dump back."""
    src = tmp_path / "empty"
    src.mkdir(exist_ok=True)
    stream = db.dump()
    result = run_backup(env.writer(), [src], state_dir=env.state, streams=[stream])
    repo, reader = env.reader()
    plan = plan_restore(repo, reader.index, reader, result.snapshot, tmp_path / "unused")
    entry = next(e for e in plan.entries if e.path.endswith(db.file_name))
    return b"".join(reader.read(bytes.fromhex(b)) for b in entry.node["content"])


class Writer(threading.Thread):
    """Moves money between two accounts in transactions: the total never changes."""

    def __init__(self, execute) -> None:
        super().__init__(daemon=True)
        self.execute, self.stop, self.done = execute, threading.Event(), 0

    def run(self) -> None:
        while not self.stop.is_set():
            self.execute()
            self.done += 1


@pytest.mark.mariadb
def test_mariadb_dump_is_consistent_under_writes(env, tmp_path):
    name = f"sbx_{secrets.token_hex(4)}"
    _mysql(f"CREATE DATABASE {name}")
    try:
        _mysql(
            "CREATE TABLE ledger (id INT AUTO_INCREMENT PRIMARY KEY, amount INT) ENGINE=InnoDB",
            name,
        )
        _mysql(f"INSERT INTO ledger (amount) SELECT 1 FROM seq_1_to_{ROWS}", name)
        _mysql(f"INSERT INTO ledger (amount) SELECT -1 FROM seq_1_to_{ROWS}", name)
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", user="root", database=name, autocommit=False)

        def transfer() -> None:
            with conn.cursor() as cur:
                cur.execute("INSERT INTO ledger (amount) VALUES (5)")
                time.sleep(0.001)
                cur.execute("INSERT INTO ledger (amount) VALUES (-5)")
            conn.commit()

        writer = Writer(transfer)
        writer.start()
        time.sleep(0.2)
        db = database_for(DatabaseConfig(type="mariadb", url=f"mysql://root@127.0.0.1/{name}"), 1)
        before = writer.done
        dump = _dump_bytes(env, tmp_path, db)
        during = writer.done - before
        writer.stop.set()
        writer.join()
        conn.close()
        assert during > 5, f"the writer committed only {during} transfers while the dump ran"
        # Load the dump under another name and check the invariant.
        copy = f"{name}_copy"
        text = dump.replace(f"`{name}`".encode(), f"`{copy}`".encode())
        subprocess.run(
            ["mariadb", "--protocol=TCP", "-h127.0.0.1", "-uroot"], input=text, check=True
        )
        total, rows = _mysql("SELECT SUM(amount), COUNT(*) FROM ledger", copy).split()
        assert total == "0" and int(rows) % 2 == 0 and int(rows) >= 2 * ROWS
        _mysql(f"DROP DATABASE {copy}")
    finally:
        _mysql(f"DROP DATABASE IF EXISTS {name}")


@pytest.mark.postgres
def test_postgresql_dump_is_consistent_under_writes(env, tmp_path):
    name = f"sbx_{secrets.token_hex(4)}"
    _psql(f"CREATE DATABASE {name}")
    try:
        _psql(
            "CREATE TABLE ledger (id serial PRIMARY KEY, amount int);"
            f"INSERT INTO ledger (amount) SELECT 1 FROM generate_series(1, {ROWS});"
            f"INSERT INTO ledger (amount) SELECT -1 FROM generate_series(1, {ROWS});",
            name,
        )
        import psycopg

        conn = psycopg.connect(f"host=127.0.0.1 user=postgres dbname={name}")

        def transfer() -> None:
            with conn.cursor() as cur:
                cur.execute("INSERT INTO ledger (amount) VALUES (7)")
                time.sleep(0.001)
                cur.execute("INSERT INTO ledger (amount) VALUES (-7)")
            conn.commit()

        writer = Writer(transfer)
        writer.start()
        time.sleep(0.2)
        db = database_for(
            DatabaseConfig(type="postgresql", url=f"postgresql://postgres@127.0.0.1/{name}"), 1
        )
        before = writer.done
        dump = _dump_bytes(env, tmp_path, db)
        during = writer.done - before
        writer.stop.set()
        writer.join()
        conn.close()
        assert during > 5, f"the writer committed only {during} transfers while the dump ran"
        copy = f"{name}_copy"
        _psql(f"CREATE DATABASE {copy}")
        subprocess.run(
            [
                "psql",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                copy,
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
            ],
            input=dump,
            check=True,
            capture_output=True,
        )
        total, rows = _psql("SELECT SUM(amount), COUNT(*) FROM ledger", copy).strip().split("|")
        assert total == "0" and int(rows) % 2 == 0 and int(rows) >= 2 * ROWS
        _psql(f"DROP DATABASE {copy}")
    finally:
        _psql(f"DROP DATABASE IF EXISTS {name}")


def test_sqlite_dump_is_consistent_under_writes(env, tmp_path):
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE ledger (id INTEGER PRIMARY KEY, amount INT)")
        conn.executemany("INSERT INTO ledger (amount) VALUES (?)", [(1,), (-1,)] * ROWS)
    writer_conn = sqlite3.connect(path, check_same_thread=False)

    def transfer() -> None:
        with writer_conn:
            writer_conn.execute("INSERT INTO ledger (amount) VALUES (3)")
            writer_conn.execute("INSERT INTO ledger (amount) VALUES (-3)")

    writer = Writer(transfer)
    writer.start()
    time.sleep(0.1)
    db = database_for(DatabaseConfig(type="sqlite", url=f"sqlite:///{path}"), 1)
    before = writer.done
    image = _dump_bytes(env, tmp_path, db)
    during = writer.done - before
    writer.stop.set()
    writer.join()
    assert during > 5, f"the writer committed only {during} transfers while the backup ran"
    restored = tmp_path / "restored.db"
    restored.write_bytes(image)
    with sqlite3.connect(restored) as conn:
        total, rows = conn.execute("SELECT SUM(amount), COUNT(*) FROM ledger").fetchone()
    assert total == 0 and rows % 2 == 0 and rows >= 2 * ROWS


def test_unreachable_server_and_missing_tool_fail_early(monkeypatch, tmp_path):
    db = database_for(
        DatabaseConfig(type="postgresql", url="postgresql://postgres@127.0.0.1:1/x"), 1
    )
    with pytest.raises(SourceError, match="postgresql"):
        db.check()
    monkeypatch.setenv("PATH", str(tmp_path))
    db = database_for(DatabaseConfig(type="mariadb", url="mysql://root@127.0.0.1/x"), 1)
    with pytest.raises(
        SourceError, match="mariadb-dump not found: install the Debian package mariadb-client"
    ):
        db.check()


@pytest.mark.mariadb
def test_wrong_password_is_named_without_the_password(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("hunter2-not-it\n")
    db = database_for(
        DatabaseConfig(type="mariadb", url="mysql://nosuchuser@127.0.0.1/x", password_file=pw), 1
    )
    with pytest.raises(SourceError) as info:
        db.check()
    assert "Access denied" in str(info.value) and "hunter2" not in str(info.value)


def test_sqlite_path_must_be_absolute():
    from sealbox.errors import ConfigError

    with pytest.raises(ConfigError, match="absolute"):
        database_for(DatabaseConfig(type="sqlite", url="sqlite:///relative.db"), 1)
    assert (
        str(database_for(DatabaseConfig(type="sqlite", url="sqlite:////var/x.db"), 1).path)
        == "/var/x.db"
    )


@pytest.mark.postgres
def test_postgresql_dump_brings_its_roles_to_a_fresh_server(env, tmp_path):
    """A rebuilt appliance's PostgreSQL has none of the application's roles: the dump creates the
    ones missing (with attributes, password and memberships) and never alters existing ones."""
    tag = secrets.token_hex(3)
    name, owner, reader = f"sbx_{tag}", f"sbx_owner_{tag}", f"sbx_reader_{tag}"
    _psql(f"CREATE ROLE {owner} LOGIN CREATEDB PASSWORD 'owner-pw' CONNECTION LIMIT 7")
    _psql(f"CREATE ROLE {reader} NOLOGIN")
    _psql(f"GRANT {reader} TO {owner}")
    _psql(f"CREATE DATABASE {name} OWNER {owner}")
    db = database_for(
        DatabaseConfig(type="postgresql", url=f"postgresql://postgres@127.0.0.1/{name}"), 1
    )
    try:
        _psql(
            f"CREATE TABLE secrets_meta (id int); ALTER TABLE secrets_meta OWNER TO {owner};"
            f"GRANT SELECT ON secrets_meta TO {reader}; INSERT INTO secrets_meta VALUES (42);",
            name,
        )
        password = _psql(f"SELECT rolpassword FROM pg_authid WHERE rolname = '{owner}'").strip()
        dump = _dump_bytes(env, tmp_path, db)
        assert dump.startswith(b"-- Sealbox: roles")
        # The appliance is rebuilt: its database and roles are gone.
        _psql(f"DROP DATABASE {name}")
        _psql(f"DROP ROLE {owner}")
        _psql(f"DROP ROLE {reader}")
        db.load(iter([dump[:1000], dump[1000:]]), replace=False)
        assert _psql("SELECT id FROM secrets_meta", name).strip() == "42"
        owner_row = _psql(
            "SELECT tableowner FROM pg_tables WHERE tablename = 'secrets_meta'", name
        ).strip()
        assert owner_row == owner
        attrs = _psql(
            "SELECT rolcanlogin, rolcreatedb, rolconnlimit, rolpassword FROM pg_authid"
            f" WHERE rolname = '{owner}'"
        ).strip()
        assert attrs == f"t|t|7|{password}"
        member = _psql(f"SELECT pg_has_role('{owner}', '{reader}', 'MEMBER')").strip()
        assert member == "t"
        # Loading again over existing roles: nothing fails, an existing role is not altered.
        _psql(f"ALTER ROLE {owner} CONNECTION LIMIT 3")
        db.load(iter([dump]), replace=True)
        assert _psql(f"SELECT rolconnlimit FROM pg_roles WHERE rolname = '{owner}'").strip() == "3"
    finally:
        _psql(f"DROP DATABASE IF EXISTS {name}")
        _psql(f"DROP ROLE IF EXISTS {owner}")
        _psql(f"DROP ROLE IF EXISTS {reader}")


@pytest.mark.mariadb
def test_mariadb_dump_brings_its_accounts_to_a_fresh_server(env, tmp_path):
    """The application's account and grants come back on a rebuilt server; an account that
    exists there keeps its own password."""
    tag = secrets.token_hex(3)
    name, user = f"sbx_{tag}", f"sbx_app_{tag}"
    _mysql(f"CREATE DATABASE {name}")
    _mysql(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY 'app-pw-1'")
    _mysql(f"GRANT SELECT, INSERT ON {name}.* TO '{user}'@'127.0.0.1'")
    db = database_for(DatabaseConfig(type="mariadb", url=f"mysql://root@127.0.0.1/{name}"), 1)
    try:
        _mysql("CREATE TABLE t (id int); INSERT INTO t VALUES (42);", name)
        dump = _dump_bytes(env, tmp_path, db)
        assert dump.startswith(b"-- Sealbox: accounts")
        _mysql(f"DROP DATABASE {name}")
        _mysql(f"DROP USER '{user}'@'127.0.0.1'")
        db.load(iter([dump]), replace=False)
        assert _mysql("SELECT id FROM t", name).strip() == "42"

        def login(password: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [
                    "mariadb",
                    "--protocol=TCP",
                    "-h127.0.0.1",
                    f"-u{user}",
                    f"-p{password}",
                    "-N",
                    "-e",
                    "SELECT COUNT(*) FROM t",
                    name,
                ],
                capture_output=True,
                text=True,
                check=False,
            )

        assert login("app-pw-1").stdout.strip() == "1"  # the account and its grant are back
        _mysql(f"ALTER USER '{user}'@'127.0.0.1' IDENTIFIED BY 'app-pw-2'")
        db.load(iter([dump]), replace=True)
        assert login("app-pw-2").returncode == 0  # an existing account keeps its password
        assert login("app-pw-1").returncode != 0
    finally:
        _mysql(f"DROP DATABASE IF EXISTS {name}")
        _mysql(f"DROP USER IF EXISTS '{user}'@'127.0.0.1'")


@pytest.mark.parametrize("head_size", [100, 3 << 20])
def test_a_prelude_comes_before_the_tool_output(tmp_path, head_size):
    """Small preludes sit in the pipe before the tool starts; big ones are written by a thread
    that then splices the tool's output behind them. Either way: prelude, then the dump, whole."""
    import os

    from sealbox.databases.base import start_dump

    body = os.urandom(5 << 20)
    (tmp_path / "dump").write_bytes(body)
    head = b"H" * head_size
    stream = start_dump(["cat", str(tmp_path / "dump")], {}, "test", prelude=lambda: head)
    fd, finish = stream.open()
    got = bytearray()
    while chunk := os.read(fd, 1 << 20):
        got += chunk
    os.close(fd)
    finish()
    assert bytes(got) == head + body
