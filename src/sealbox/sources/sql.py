"""``sql`` source: any database SQLAlchemy reaches (MariaDB/MySQL, PostgreSQL, SQLite)."""

from __future__ import annotations

from typing import Any

from sealbox.config.models import SqlSource
from sealbox.errors import SourceError
from sealbox.items import ITEM_TYPES, Item, Version, normalise_time
from sealbox.sources.secretfile import read_secret_file

__all__ = ["read"]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def _driver_reason(exc: Exception) -> str:
    """The database's own message, first line only: it never contains the password."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0][:300] if text else type(orig).__name__


def _engine(source: SqlSource) -> Any:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        url = make_url(source.url)
    except ArgumentError as exc:
        raise SourceError(f"source {source.name!r}: not a database URL") from exc
    if source.password_file is not None:
        url = url.set(password=read_secret_file(source.password_file, f"source {source.name!r}"))
    connect_args: dict[str, Any] = {}
    timeout = int(source.timeout)
    if url.get_backend_name() in ("mysql", "mariadb"):
        connect_args = {"connect_timeout": timeout, "read_timeout": timeout}
    elif url.get_backend_name() == "postgresql":
        connect_args = {"connect_timeout": timeout}
    elif url.get_backend_name() == "sqlite":
        connect_args = {"timeout": timeout}
    try:
        return create_engine(url, connect_args=connect_args, poolclass=_null_pool())
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise SourceError(
            f"source {source.name!r}: unsupported database URL ({_driver_reason(exc)})"
        ) from exc


def _null_pool() -> Any:
    from sqlalchemy.pool import NullPool

    return NullPool


def _secrets(row: dict[str, Any], columns: list[str]) -> dict[str, str]:
    out = {}
    for column in columns:
        value = row.get(column)
        if value is not None:
            out[column] = _text(value) or ""
    return out


def read(source: SqlSource) -> list[Item]:
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    cols = source.columns
    engine = _engine(source)
    where = f"source {source.name!r} ({engine.url.render_as_string(hide_password=True)})"
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(source.query)).mappings().all()
            history_rows = (
                conn.execute(text(source.history_query)).mappings().all()
                if source.history_query
                else []
            )
    except SQLAlchemyError as exc:
        raise SourceError(f"{where}: {_driver_reason(exc)}") from exc
    finally:
        engine.dispose()

    history: dict[str, list[Version]] = {}
    for h in history_rows:
        if "item_id" not in h:
            raise SourceError(f"{where}: history_query must return an 'item_id' column")
        key = str(h["item_id"])
        history.setdefault(key, []).append(
            Version(
                time=normalise_time(h.get("changed_at")) or "",
                secret=_secrets(dict(h), cols.secrets),
            )
        )

    items: list[Item] = []
    for row in rows:
        if cols.id not in row:
            raise SourceError(f"{where}: the query returns no {cols.id!r} column (see columns.id)")
        raw_id = str(row[cols.id])
        raw_type = _text(row.get(cols.type)) if cols.type else None
        item_type = source.type_map.get(raw_type or "", raw_type or "credential")
        fields: dict[str, str] = {}
        if item_type not in ITEM_TYPES:
            fields["source_type"] = item_type
            item_type = "other"
        tags = _text(row.get(cols.tags)) if cols.tags else None
        items.append(
            Item(
                id=source.id_prefix + raw_id,
                type=item_type,
                name=_text(row.get(cols.name)) or raw_id,
                secret=_secrets(dict(row), cols.secrets),
                host=_text(row.get(cols.host)) if cols.host else None,
                url=_text(row.get(cols.url)) if cols.url else None,
                username=_text(row.get(cols.username)) if cols.username else None,
                tags=[t.strip() for t in tags.split(",") if t.strip()] if tags else [],
                notes=_text(row.get(cols.notes)) if cols.notes else None,
                fields=fields,
                updated=normalise_time(row.get(cols.updated)) if cols.updated else None,
                source=source.name,
                history=history.get(raw_id, []),
            )
        )
    return items
