"""``sql`` source: MariaDB/MySQL and PostgreSQL through SQLAlchemy, SQLite through the stdlib.

The queries are the operator's own SQL, so they go to the driver as written (a DB-API cursor,
rows fetched in batches as plain tuples). SQLAlchemy only turns the URL into a connection; a
SQLite vault is opened read-only with the stdlib (no SQLAlchemy import, and no chance of writing
to the appliance's database).

Versions (``history_query``) are read first and kept as compact pre-encoded JSON per item
(:class:`orjson.Fragment`), so 100,000 items with their history do not become a million objects.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from operator import itemgetter
from typing import Any
from urllib.parse import quote, unquote

import orjson

from sealbox.config.models import SqlSource
from sealbox.errors import SourceError
from sealbox.items import ITEM_TYPES, Item, normalise_time
from sealbox.util.redact import ambiguous_userinfo, mask_url
from sealbox.util.secretfile import read_secret_file

__all__ = ["read"]

_BATCH = 5000
_FIELDS = ("id", "type", "name", "host", "url", "username", "tags", "notes", "updated")
_SQLITE = "sqlite:///"


def _text(value: Any) -> str | None:
    if value is None or value.__class__ is str:
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def _driver_reason(exc: BaseException) -> str:
    """The database's own message, first line only: it never contains the password."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0][:300] if text else type(orig).__name__


def _where(source: SqlSource) -> str:
    """How errors name the source: its URL masked (SQLAlchemy's own rendering would show the
    part of a password after an unencoded '@' as the host)."""
    shown = f"source {source.name!r} ({mask_url(source.url)})"
    if source.url.startswith(_SQLITE):
        return shown
    if ambiguous_userinfo(source.url):  # the driver would name part of the password as the host
        raise SourceError(
            f"{shown}: the password holds '@', '/', '?' or '#': percent-encode it,"
            " or use password_file"
        )
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(source.url)
    except ArgumentError as exc:
        raise SourceError(f"source {source.name!r}: not a database URL") from exc
    return shown


@contextmanager
def _sqlite(source: SqlSource) -> Iterator[tuple[Any, type[BaseException]]]:
    path = unquote(source.url.removeprefix(_SQLITE).split("?", 1)[0])
    try:
        conn = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=source.timeout)
    except sqlite3.Error as exc:
        raise SourceError(f"source {source.name!r}: cannot open {path}: {exc}") from exc
    with closing(conn):
        yield conn, sqlite3.Error


@contextmanager
def _server(source: SqlSource) -> Iterator[tuple[Any, type[BaseException]]]:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
    from sqlalchemy.pool import NullPool

    url = make_url(source.url)
    if source.password_file is not None:
        url = url.set(password=read_secret_file(source.password_file, f"source {source.name!r}"))
    timeout = int(source.timeout)
    connect_args: dict[str, Any] = {"connect_timeout": timeout}
    if url.get_backend_name() in ("mysql", "mariadb"):
        connect_args["read_timeout"] = timeout
    try:
        engine = create_engine(url, connect_args=connect_args, poolclass=NullPool)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise SourceError(
            f"source {source.name!r}: unsupported database URL ({mask_url(_driver_reason(exc))})"
        ) from exc
    try:
        with engine.connect() as conn:
            yield conn.connection, getattr(engine.dialect.dbapi, "Error", SQLAlchemyError)
    except SQLAlchemyError as exc:
        raise SourceError(f"{_where(source)}: {_driver_reason(exc)}") from exc
    finally:
        engine.dispose()


def _connect(source: SqlSource) -> AbstractContextManager[tuple[Any, type[BaseException]]]:
    return _sqlite(source) if source.url.startswith(_SQLITE) else _server(source)


def _rows(cursor: Any) -> Iterator[tuple[Any, ...]]:
    while batch := cursor.fetchmany(_BATCH):
        yield from batch


def _execute(dbapi: Any, query: str) -> tuple[Any, list[str]]:
    cursor = dbapi.cursor()
    cursor.execute(query)
    return cursor, [str(d[0]) for d in cursor.description or ()]


def _column(
    keys: list[str], name: str | None, where: str, option: str, required: bool
) -> int | None:
    """Index of a mapped column; a column set in the config that the query lacks is an error."""
    if name is None or (name not in keys and not required):
        return None
    if name not in keys:
        raise SourceError(f"{where}: the query returns no {name!r} column (see {option})")
    return keys.index(name)


def _secret_reader(keys: list[str], columns: list[str]) -> Any:
    """row -> {column: text} for the secret columns present, leaving out NULLs."""
    pairs = [(name, keys.index(name)) for name in columns if name in keys]

    def read(row: tuple[Any, ...]) -> dict[str, str]:
        return {name: _text(row[i]) or "" for name, i in pairs if row[i] is not None}

    return read


def _history(dbapi: Any, source: SqlSource, where: str) -> dict[str, bytearray]:
    """item id -> its versions as one JSON array, still open (``[v1,v2``)."""
    history: dict[str, bytearray] = {}
    if not source.history_query:
        return history
    cursor, keys = _execute(dbapi, source.history_query)
    item_at = _column(keys, "item_id", where, "history_query", True) or 0
    time_at = keys.index("changed_at") if "changed_at" in keys else None
    secret = _secret_reader(keys, source.columns.secrets)
    dumps = orjson.dumps
    for row in _rows(cursor):
        when = normalise_time(row[time_at]) if time_at is not None else None
        # Appended to one buffer per item at once: orjson's own result objects keep a few KiB
        # of slack each, which for 200,000 versions would cost hundreds of MiB.
        encoded = dumps({"time": when or "", "secret": secret(row)})
        key = str(row[item_at])
        versions = history.get(key)
        if versions is None:
            history[key] = bytearray(b"[") + encoded
        else:
            versions += b"," + encoded
    cursor.close()
    return history


def read(source: SqlSource) -> Iterator[Item]:
    """Stream the items of one SQL source; SourceError names it on any failure."""
    where = _where(source)
    with _connect(source) as (dbapi, driver_error):
        # Queries run on the driver's own cursor, so its DB-API Error class is what to catch.
        try:
            history = _history(dbapi, source, where)
            cursor, keys = _execute(dbapi, source.query)
            explicit = source.columns.model_fields_set
            at = [
                _column(
                    keys,
                    getattr(source.columns, f),
                    where,
                    f"columns.{f}",
                    f == "id" or f in explicit,
                )
                for f in _FIELDS
            ]
            present = [i for i in at if i is not None]
            pick = itemgetter(*present)
            slots = {f: present.index(i) for f, i in zip(_FIELDS, at, strict=True) if i is not None}
            secret = _secret_reader(keys, source.columns.secrets)
            for row in _rows(cursor):
                values = pick(row)
                yield _item(
                    source,
                    [values[slots[f]] if f in slots else None for f in _FIELDS],
                    secret(row),
                    history,
                )
            cursor.close()
        except driver_error as exc:
            raise SourceError(f"{where}: {_driver_reason(exc)}") from exc


def _item(
    source: SqlSource,
    values: list[Any],
    secret: dict[str, str],
    history: dict[str, bytearray],
) -> Item:
    raw_id, raw_type, name, host, url, username, tags, notes, updated = values
    if raw_id is None or raw_id == "":
        raise SourceError(f"source {source.name!r}: the query returned a row with an empty id")
    raw_id = _text(raw_id) or ""
    raw_type = _text(raw_type)
    item_type = source.type_map.get(raw_type or "", raw_type or "credential")
    fields: dict[str, str] = {}
    if item_type not in ITEM_TYPES:
        fields["source_type"] = item_type
        item_type = "other"
    tags = _text(tags)
    versions = history.pop(raw_id, None)
    return Item(
        id=source.id_prefix + raw_id,
        type=item_type,
        name=_text(name) or raw_id,
        secret=secret,
        host=_text(host),
        url=_text(url),
        username=_text(username),
        tags=[t.strip() for t in tags.split(",") if t.strip()] if tags else [],
        notes=_text(notes),
        fields=fields,
        updated=normalise_time(updated),
        source=source.name,
        history=orjson.Fragment(bytes(versions + b"]")) if versions else [],
    )


def change_marker(source: SqlSource) -> str | None:
    """The value of the source's ``watch_query`` (its first column of its first row), as text;
    None when the source has no watch query."""
    if source.watch_query is None:
        return None
    with _connect(source) as (dbapi, errors):
        try:
            cursor, _ = _execute(dbapi, source.watch_query)
            row = cursor.fetchone()
        except errors as exc:
            raise SourceError(
                f"{_where(source)}: watch_query failed: {_driver_reason(exc)}"
            ) from exc
    return "" if row is None or row[0] is None else str(row[0])
