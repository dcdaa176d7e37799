"""The attacker wrote the dump: a load into the real MariaDB and PostgreSQL servers, through the
real ``mariadb`` and ``psql`` clients, runs its SQL and never a client command on this host."""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import pytest

from sealbox.config.models import DatabaseConfig
from sealbox.databases import database_for
from sealbox.errors import IntegrityError
from tests.conftest import IN_CI


def _run(argv: list[str], what: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        if IN_CI:
            raise AssertionError(done.stderr)
        pytest.skip(f"{what} not reachable: {done.stderr.strip()}")
    return done.stdout


def _mysql(sql: str) -> str:
    return _run(
        ["mariadb", "--protocol=TCP", "-h127.0.0.1", "-uroot", "-N", "-B", "-e", sql], "MariaDB"
    )


def _psql(sql: str, db: str = "postgres") -> str:
    return _run(
        ["psql", "-X", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-tAqc", sql], "PostgreSQL"
    )


@pytest.fixture
def mariadb_name():
    name = f"sbx_adv_{secrets.token_hex(4)}"
    _mysql("SELECT 1")
    yield name
    _mysql(f"DROP DATABASE IF EXISTS {name}")


@pytest.fixture
def postgres_name():
    name = f"sbx_adv_{secrets.token_hex(4)}"
    _psql("SELECT 1")
    yield name
    _psql(f"DROP DATABASE IF EXISTS {name}")


def _mariadb(name: str):
    return database_for(DatabaseConfig(type="mariadb", url=f"mysql://root@127.0.0.1/{name}"), 1)


def _postgres(name: str):
    return database_for(
        DatabaseConfig(type="postgresql", url=f"postgresql://postgres@127.0.0.1/{name}"), 1
    )


# Each attack: (the client command, what it would leave behind if it ran).
def _mariadb_attacks(tmp: Path) -> dict[str, str]:
    local = tmp / "local-secret.txt"
    local.write_text("appliance-local-secret\n")
    sourced = tmp / "more.sql"
    sourced.write_text(f"system touch {tmp}/marker\n")
    # vi reads the rest of the dump as keystrokes once `\e` started it: `:!cmd` runs a shell.
    vim = "\\e\n" + ("-- " + "x" * 120 + "\n") * 3000 + f":!touch {tmp}/marker\n:q!\n"
    return {
        "system": f"system touch {tmp}/marker",
        "bang": f"\\! touch {tmp}/marker",
        "source": f"source {sourced}",
        "dot-source": f"\\. {sourced}",
        "tee": f"tee {tmp}/marker",
        "edit-with-parent-editor": "edit",
        "edit-into-vi": vim,
        "load-data-local": f"LOAD DATA LOCAL INFILE '{local}' INTO TABLE t;",
    }


@pytest.mark.mariadb
@pytest.mark.parametrize(
    "attack",
    [
        "system",
        "bang",
        "source",
        "dot-source",
        "tee",
        "edit-with-parent-editor",
        "edit-into-vi",
        "load-data-local",
    ],
)
def test_mariadb_load_runs_no_client_command_of_a_forged_dump(
    mariadb_name, tmp_path, monkeypatch, attack
):
    # Our own EDITOR is a command line the client would run for `edit`: it must never get it.
    monkeypatch.setenv("EDITOR", f"touch {tmp_path}/marker")
    monkeypatch.setenv("VISUAL", f"touch {tmp_path}/marker")
    line = _mariadb_attacks(tmp_path)[attack]
    dump = (
        f"CREATE DATABASE {mariadb_name};\nUSE {mariadb_name};\nCREATE TABLE t (v TEXT);\n"
        f"{line}\nINSERT INTO t VALUES ('after');\n"
    ).encode()
    with pytest.raises(IntegrityError, match="load stopped: the dump holds a client command"):
        _mariadb(mariadb_name).load(iter([dump]), replace=False)
    assert not (tmp_path / "marker").exists(), "a command from the dump ran"
    rows = _mysql(f"SELECT v FROM {mariadb_name}.t").split()
    assert "appliance-local-secret" not in rows  # no local file went into the server


def _psql_attacks(tmp: Path) -> dict[str, str]:
    marker = tmp / "marker"
    included = tmp / "more.sql"
    included.write_text(f"\\! touch {marker}\n")
    return {
        "bang": f"\\! touch {marker}",
        "output-pipe": f"\\o |touch {marker}\nSELECT 1;",
        "query-pipe": f"SELECT 1 \\g |touch {marker}",
        "copy-program": f"\\copy (SELECT 1) TO PROGRAM 'touch {marker}'",
        "include": f"\\i {included}",
        "set-then-bang": f"\\set ON_ERROR_STOP off\n\\! touch {marker}",
        "connect": "\\connect postgres",
        "edit": "\\e",
        "wrong-key-unrestrict": f"\\unrestrict {'a' * 64}\n\\! touch {marker}",
        # A pg_dump-like frame: its \restrict and \unrestrict lines are taken out of the stream,
        # which must not lift our restriction for what comes after them.
        "framed-by-dump-keys": f"\\restrict {'b' * 64}\n\\unrestrict {'b' * 64}\n\\! touch {marker}",
        "second-restrict": (
            f"\\restrict {'c' * 64}\n\\restrict {'d' * 64}\n\\unrestrict {'d' * 64}\n"
            f"\\! touch {marker}"
        ),
        "bang-in-the-middle-of-a-frame": (
            f"\\restrict {'e' * 64}\n\\! touch {marker}\n\\unrestrict {'e' * 64}"
        ),
    }


@pytest.mark.postgres
@pytest.mark.parametrize(
    "attack",
    [
        "bang",
        "output-pipe",
        "query-pipe",
        "copy-program",
        "include",
        "set-then-bang",
        "connect",
        "edit",
        "wrong-key-unrestrict",
        "framed-by-dump-keys",
        "second-restrict",
        "bang-in-the-middle-of-a-frame",
    ],
)
def test_postgresql_load_runs_no_meta_command_of_a_forged_dump(
    postgres_name, tmp_path, monkeypatch, attack
):
    monkeypatch.setenv("EDITOR", f"touch {tmp_path}/marker")
    monkeypatch.setenv("PSQL_EDITOR", f"touch {tmp_path}/marker")
    dump = f"CREATE TABLE t (v text);\n{_psql_attacks(tmp_path)[attack]}\n".encode()
    dump += b"INSERT INTO t VALUES ('after');\n"
    with pytest.raises(IntegrityError, match="load stopped: the dump holds a client command"):
        _postgres(postgres_name).load(iter([dump]), replace=False)
    assert not (tmp_path / "marker").exists(), "a command from the dump ran"
    assert _psql("SELECT count(*) FROM t WHERE v = 'after'", postgres_name).strip() == "0"


def _read_dump(db) -> bytes:
    fd, finish = db.dump().open()
    data = bytearray()
    while chunk := os.read(fd, 1 << 16):
        data += chunk
    os.close(fd)
    finish()
    return bytes(data)


# Text that looks like psql meta-commands, as column values: COPY data and SQL literals are data.
TRICKY = ["\\! touch /tmp/x", "\\restrict abc", "\\unrestrict abc", "\restrict abc", "a\nb\\."]


@pytest.mark.postgres
def test_postgresql_restricted_load_keeps_copy_data_that_looks_like_commands(postgres_name):
    """A real pg_dump (framed by its own \\restrict K / \\unrestrict K) loads whole under our
    restriction, values that look like meta-commands included, split at awkward places."""
    _psql(f"CREATE DATABASE {postgres_name}")
    _psql("CREATE TABLE t (n int, v text)", postgres_name)
    for n, value in enumerate(TRICKY):
        literal = value.replace("'", "''").replace("\r", "' || chr(13) || '")
        _psql(f"INSERT INTO t VALUES ({n}, '{literal}')", postgres_name)
    _psql(
        f"CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $$SELECT '{TRICKY[0]}'$$", postgres_name
    )
    db = _postgres(postgres_name)
    dump = _read_dump(db)
    assert b"\n\\restrict " in dump and b"\n\\unrestrict " in dump  # pg_dump framed it
    chunks = [dump[i : i + 7] for i in range(0, len(dump), 7)]  # lines cut across chunks
    db.load(iter(chunks), replace=True)
    rows = _psql("SELECT n, encode(convert_to(v, 'UTF8'), 'hex') FROM t ORDER BY n", postgres_name)
    got = [bytes.fromhex(line.split("|")[1]).decode() for line in rows.split()]
    assert got == TRICKY
    assert _psql("SELECT f()", postgres_name).strip() == TRICKY[0]


@pytest.mark.postgres
def test_postgresql_dump_without_restrict_lines_loads_restricted(postgres_name):
    """A dump from a pg_dump older than 15.14 has no frame: nothing is taken out of it, not even
    a COPY data line that reads like pg_dump's (a value starting with a carriage return)."""
    dump = b"CREATE TABLE t (v text);\nCOPY public.t (v) FROM stdin;\n\\restrict abc\n\\.\n"
    _postgres(postgres_name).load(iter([dump]), replace=False)
    value = _psql("SELECT encode(convert_to(v, 'UTF8'), 'hex') FROM t", postgres_name).strip()
    assert bytes.fromhex(value) == b"\restrict abc"


@pytest.mark.mariadb
def test_mariadb_sandboxed_load_keeps_data_that_looks_like_commands(mariadb_name):
    _mysql(f"CREATE DATABASE {mariadb_name}")
    _mysql(f"CREATE TABLE {mariadb_name}.t (n INT, v TEXT)")
    values = ["system touch /tmp/x", "\\! touch /tmp/x", "source /etc/passwd", "a\nedit\nb"]
    for n, value in enumerate(values):
        escaped = value.replace("\\", "\\\\").replace("\n", "\\n")
        _mysql(f"INSERT INTO {mariadb_name}.t VALUES ({n}, '{escaped}')")
    db = _mariadb(mariadb_name)
    dump = _read_dump(db)
    assert b"enable the sandbox mode" in dump  # mariadb-dump's own \- line loads too
    db.load(iter([dump]), replace=True)
    rows = _mysql(f"SELECT HEX(v) FROM {mariadb_name}.t ORDER BY n").split()
    assert [bytes.fromhex(r).decode() for r in rows] == values
