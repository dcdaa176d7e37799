"""Secret sources against real stores: SQLite, MariaDB and PostgreSQL servers, KeePass, programs."""

from __future__ import annotations

import json
import secrets
import sys

import orjson
import pytest
from pykeepass import create_database

from sealbox.config.models import CommandSource, JsonSource, KdbxSource, SqlSource
from sealbox.errors import SourceError
from sealbox.sources import collect as _collect
from sealbox.sources import read_source as _read_source
from tests.conftest import IN_CI


def read_source(source):
    return list(_read_source(source))


def collect(sources):
    return list(_collect(sources))


MARIADB = "mysql+pymysql://root@127.0.0.1:3306"
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432"

SCHEMA = [
    "CREATE TABLE items (id INTEGER PRIMARY KEY, kind VARCHAR(20), name VARCHAR(100), host VARCHAR(100),"
    " login VARCHAR(50), password VARCHAR(100), tags VARCHAR(100), updated TIMESTAMP)",
    "CREATE TABLE item_history (item_id INTEGER, changed_at TIMESTAMP, password VARCHAR(100))",
    "INSERT INTO items VALUES (1, 'pw', 'Oracle prod', 'db1', 'sys', 's3cret', 'dba,prod', '2026-11-01 10:00:00')",
    "INSERT INTO items VALUES (2, 'key', 'deploy key', 'web1', 'deploy', 'k3y', NULL, '2026-11-02 10:00:00')",
    "INSERT INTO items VALUES (3, 'weird', 'misc', NULL, NULL, NULL, NULL, '2026-11-03 10:00:00')",
    "INSERT INTO item_history VALUES (1, '2026-09-01 10:00:00', 'old1')",
    "INSERT INTO item_history VALUES (1, '2026-10-01 10:00:00', 'old2')",
]


def _source(url: str, **extra) -> SqlSource:
    return SqlSource(
        type="sql",
        name="vault",
        url=url,
        timeout=5,
        query="SELECT id, kind, name, host, login, password, tags, updated FROM items ORDER BY id",
        history_query="SELECT item_id, changed_at, password FROM item_history ORDER BY changed_at",
        columns={
            "type": "kind",
            "username": "login",
            "tags": "tags",
            "updated": "updated",
            "secrets": ["password"],
        },
        type_map={"pw": "credential", "key": "ssh_key"},
        **extra,
    )


def _check(items):
    assert [i.id for i in items] == ["1", "2", "3"]
    first = items[0]
    assert (first.type, first.name, first.host, first.username) == (
        "credential",
        "Oracle prod",
        "db1",
        "sys",
    )
    assert first.secret == {"password": "s3cret"} and first.tags == ["dba", "prod"]
    assert first.updated == "2026-11-01T10:00:00Z"
    history = orjson.loads(orjson.dumps(first.history))
    assert [(v["time"], v["secret"]["password"]) for v in history] == [
        ("2026-09-01T10:00:00Z", "old1"),
        ("2026-10-01T10:00:00Z", "old2"),
    ]
    assert items[1].type == "ssh_key" and items[1].history == []
    assert (
        items[2].type == "other"
        and items[2].fields == {"source_type": "weird"}
        and items[2].secret == {}
    )


def _server_db(base: str, admin_db: str):
    from sqlalchemy import create_engine, text

    name = f"sealbox_test_{secrets.token_hex(4)}"
    try:
        admin = create_engine(f"{base}/{admin_db}", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
    except Exception as exc:
        if IN_CI:
            raise
        pytest.skip(f"database server not reachable: {exc}")
    engine = create_engine(f"{base}/{name}")
    with engine.begin() as conn:
        for statement in SCHEMA:
            conn.execute(text(statement))
    engine.dispose()
    return admin, name


def _drop(admin, name):
    from sqlalchemy import text

    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE {name}"))
    admin.dispose()


def test_sqlite_source(tmp_path):
    import sqlite3

    db = tmp_path / "vault.db"
    with sqlite3.connect(db) as conn:
        for statement in SCHEMA:
            conn.execute(statement)
    _check(read_source(_source(f"sqlite:///{db}")))


@pytest.mark.mariadb
def test_mariadb_source():
    admin, name = _server_db(MARIADB, "mysql")
    try:
        _check(read_source(_source(f"{MARIADB}/{name}")))
    finally:
        _drop(admin, name)


@pytest.mark.postgres
def test_postgresql_source():
    admin, name = _server_db(POSTGRES, "postgres")
    try:
        _check(read_source(_source(f"{POSTGRES}/{name}")))
    finally:
        _drop(admin, name)


@pytest.mark.mariadb
def test_wrong_password_is_a_source_error_without_the_password(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("not-the-password-xyz\n")
    with pytest.raises(SourceError) as info:
        read_source(_source("mysql+pymysql://nosuchuser@127.0.0.1:3306/x", password_file=pw))
    assert "not-the-password-xyz" not in str(info.value)
    # The server's own refusal, not just any failure (no server at all must not pass this test).
    assert "source 'vault'" in str(info.value) and "Access denied" in str(info.value)


def test_unreachable_database_is_a_source_error():
    with pytest.raises(SourceError, match="source 'vault'"):
        read_source(_source("postgresql+psycopg://postgres@127.0.0.1:1/x"))


def test_bad_query_is_a_source_error(tmp_path):
    import sqlite3

    sqlite3.connect(tmp_path / "empty.db").close()
    with pytest.raises(SourceError, match="no such table"):
        read_source(_source(f"sqlite:///{tmp_path}/empty.db"))


def test_missing_sqlite_file_is_named_and_never_created(tmp_path):
    with pytest.raises(SourceError, match="cannot open"):
        read_source(_source(f"sqlite:///{tmp_path}/missing.db"))
    assert not (tmp_path / "missing.db").exists()


def test_mapped_column_missing_from_the_query(tmp_path):
    import sqlite3

    db = tmp_path / "v.db"
    with sqlite3.connect(db) as conn:
        for statement in SCHEMA:
            conn.execute(statement)
    source = _source(f"sqlite:///{db}").model_copy(
        update={"columns": _source("x").columns.model_copy(update={"url": "link"})}
    )
    source.columns.model_fields_set.add("url")
    with pytest.raises(SourceError, match="no 'link' column"):
        read_source(source)


def test_kdbx_source_with_history(tmp_path):
    path, pw = tmp_path / "v.kdbx", tmp_path / "pw"
    pw.write_text("kp-pass\n")
    kp = create_database(str(path), password="kp-pass")
    group = kp.add_group(kp.root_group, "ssh_key")
    entry = kp.add_entry(
        group, "jump host", "root", "first", url="ssh://jump.corp:22", tags=["ops"]
    )
    entry.save_history()
    entry.password = "second"
    entry.set_custom_property("otp_seed", "JBSWY3DP", protect=True)
    entry.set_custom_property("owner", "ops team")
    kp.save()
    items = read_source(KdbxSource(type="kdbx", path=path, password_file=pw))
    assert len(items) == 1
    item = items[0]
    assert (item.type, item.name, item.username, item.host) == (
        "ssh_key",
        "jump host",
        "root",
        "jump.corp",
    )
    assert item.secret == {"password": "second", "otp_seed": "JBSWY3DP"}
    assert item.fields == {"owner": "ops team"} and item.tags == ["ops"]
    assert [v.secret["password"] for v in item.history] == ["first"]
    pw.write_text("wrong\n")
    with pytest.raises(SourceError, match="wrong password"):
        read_source(KdbxSource(type="kdbx", path=path, password_file=pw))
    path.write_bytes(b"not a kdbx")
    with pytest.raises(SourceError, match=r"damaged|not a readable KeePass"):
        read_source(KdbxSource(type="kdbx", path=path, password_file=pw))


def test_json_and_command_sources(tmp_path):
    doc = {
        "items": [
            {
                "id": "a",
                "type": "secret",
                "name": "token",
                "secret": {"token": "t0k"},
                "history": [{"time": "2026-01-01T00:00:00Z", "secret": {"token": "old"}}],
            }
        ]
    }
    path = tmp_path / "items.json"
    path.write_text(json.dumps(doc))
    items = read_source(JsonSource(type="json", path=path))
    assert items[0].secret == {"token": "t0k"} and items[0].history[0].secret == {"token": "old"}
    command = CommandSource(
        type="command", command=[sys.executable, "-c", f"print(open({str(path)!r}).read())"]
    )
    assert read_source(command)[0].id == "a"
    failing = CommandSource(
        type="command", command=[sys.executable, "-c", "import sys; sys.exit(3)"]
    )
    with pytest.raises(SourceError, match="status 3"):
        read_source(failing)
    slow = CommandSource(
        type="command", timeout=0.5, command=[sys.executable, "-c", "import time; time.sleep(5)"]
    )
    with pytest.raises(SourceError, match="killed"):
        read_source(slow)
    with pytest.raises(SourceError, match="not found"):
        read_source(CommandSource(type="command", command=["/nonexistent/exporter"]))


def test_invalid_items_are_named(tmp_path):
    path = tmp_path / "items.json"
    path.write_text(json.dumps([{"id": "a", "type": "bogus"}]))
    with pytest.raises(SourceError, match=r"item #0: item 'a': unknown type 'bogus'"):
        read_source(JsonSource(type="json", path=path))
    path.write_text("{")
    with pytest.raises(SourceError, match="not valid JSON"):
        read_source(JsonSource(type="json", path=path))


def test_ids_must_be_unique_across_sources(tmp_path):
    path = tmp_path / "items.json"
    path.write_text(json.dumps([{"id": "a", "type": "secret"}]))
    one = JsonSource(type="json", name="one", path=path)
    two = JsonSource(type="json", name="two", path=path)
    with pytest.raises(SourceError, match="set id_prefix"):
        collect([one, two])
    two = JsonSource(type="json", name="two", path=path, id_prefix="two:")
    assert [i.id for i in collect([one, two])] == ["a", "two:a"]
