"""Export an opened secrets document as JSON, CSV or a KeePass KDBX 4 file.

These files hold the secrets in the clear (JSON, CSV) or under the password the custodian picks
(KDBX); they are written only where the custodian asks, created with mode 0600, never over an
existing file unless ``force``.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

import orjson

from sealbox.breakglass.document import Document
from sealbox.errors import OutputError

__all__ = ["FORMATS", "export"]

FORMATS = ("json", "csv", "kdbx")
CSV_COLUMNS = [
    "id",
    "type",
    "name",
    "host",
    "url",
    "username",
    "password",
    "other_secrets",
    "tags",
    "notes",
    "updated",
    "source",
    "versions",
]


def _primary(secret: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The field a password manager shows as "password", and the rest."""
    if "password" in secret:
        key = "password"
    elif secret:
        key = next(iter(secret))
    else:
        return "", {}
    return secret[key], {k: v for k, v in secret.items() if k != key}


def _create(path: Path, force: bool) -> int:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        return os.open(path, flags, 0o600)
    except FileExistsError:
        raise OutputError(f"{path} exists already (use --force to replace it)") from None
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from exc


def to_json(doc: Document) -> bytes:
    head = orjson.dumps({"appliance": doc.appliance, "created": doc.created})[:-1]
    items = b",\n".join(orjson.dumps(item) for item in doc.iter_items())
    return head + b',"items":[\n' + items + b"\n]}\n"


def to_csv(doc: Document) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for item in doc.iter_items():
        password, others = _primary(item.get("secret") or {})
        writer.writerow(
            [
                item.get("id"),
                item.get("type"),
                item.get("name"),
                item.get("host") or "",
                item.get("url") or "",
                item.get("username") or "",
                password,
                orjson.dumps(others).decode() if others else "",
                ",".join(item.get("tags") or []),
                item.get("notes") or "",
                item.get("updated") or "",
                item.get("source") or "",
                len(item.get("history") or []) + 1,
            ]
        )
    return out.getvalue().encode()


def _kdbx(doc: Document, path: Path, password: str) -> None:
    from pykeepass import create_database

    kp = create_database(str(path), password=password)
    groups: dict[str, Any] = {}
    for item in doc.iter_items():
        kind = str(item.get("type") or "other")
        if kind not in groups:
            groups[kind] = kp.add_group(kp.root_group, kind)
        password_value, others = _primary(item.get("secret") or {})
        history = item.get("history") or []
        first_secret = history[0]["secret"] if history else item.get("secret") or {}
        first_password, _ = _primary(first_secret)
        entry = kp.add_entry(
            groups[kind],
            title=str(item.get("name") or item.get("id")),
            username=item.get("username") or "",
            password=first_password if history else password_value,
            url=item.get("url") or None,
            notes=item.get("notes") or None,
            tags=list(item.get("tags") or []) or None,
            force_creation=True,
        )
        # Older versions become KeePass history entries, oldest first, then the current value.
        for version in history[1:]:
            entry.save_history()
            entry.password = _primary(version.get("secret") or {})[0]
        if history:
            entry.save_history()
            entry.password = password_value
        entry.set_custom_property("sealbox_id", str(item.get("id")))
        entry.set_custom_property("sealbox_type", kind)
        if item.get("host"):
            entry.set_custom_property("host", str(item["host"]))
        for key, value in others.items():
            entry.set_custom_property(key, value, protect=True)
        for key, value in (item.get("fields") or {}).items():
            entry.set_custom_property(f"field:{key}", str(value))
    kp.save()


def export(
    doc: Document, fmt: str, path: Path, *, password: str | None = None, force: bool = False
) -> None:
    """Write the export; OutputError if the file exists (without ``force``) or cannot be written."""
    if fmt not in FORMATS:
        raise OutputError(f"unknown export format {fmt!r} (one of {', '.join(FORMATS)})")
    if fmt == "kdbx" and not password:
        raise OutputError("a KDBX export needs a password")
    fd = _create(path, force)
    if fmt == "kdbx":
        os.close(fd)
        # pykeepass replaces the file when it saves: a strict umask keeps the new one 0600 too.
        old_umask = os.umask(0o077)
        try:
            _kdbx(doc, path, password or "")
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror}") from exc
        finally:
            os.umask(old_umask)
        return
    data = to_json(doc) if fmt == "json" else to_csv(doc)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
