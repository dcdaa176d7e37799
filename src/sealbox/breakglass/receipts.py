"""Break-glass receipts: which items an opener revealed or exported, when, with which shares.

Both openers write one (``breakglass open ... show --reveal`` and ``export``; the browser opener
offers it as a download); ``sealbox breakglass receipt import`` turns it into rotation tasks on
the appliance. A receipt names items (id, name, type) and shares (identifier and index), never a
secret or a share word. Format: ``docs/design/format.md`` §7a. Pure code: bytes in, values out.

A receipt is not signed: a custodian's laptop holds no key the appliance could check, and none
is needed. A forged receipt can only add rotation tasks; one withheld is the custodians' choice,
which no file format can prevent (see ``docs/design/threat-model.md``).
"""

from __future__ import annotations

import getpass
import hashlib
import platform
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from sealbox.errors import CorruptFileError

__all__ = [
    "ACTIONS",
    "MAX_RECEIPT",
    "RECEIPT_FORMAT",
    "Receipt",
    "RevealedItem",
    "add_event",
    "machine_description",
    "new_receipt",
    "parse_receipt",
    "utc_now",
]

RECEIPT_FORMAT = "sealbox-breakglass-receipt"
RECEIPT_VERSION = 1
ACTIONS = ("reveal", "copy", "export")
MAX_RECEIPT = 64 << 20  # an export of a million items lists them all: still far below
_MAX_TEXT = 1024


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def machine_description() -> str:
    """Which machine opened the backup, as well as Python can tell (no network look-up)."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in a container: still a receipt
        user = "?"
    return f"{socket.gethostname()} ({platform.system()} {platform.release()}), user {user}"


@dataclass(frozen=True)
class RevealedItem:
    id: str
    name: str
    type: str


def _text(value: Any, what: str, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > _MAX_TEXT:
        raise CorruptFileError(f"receipt: {what} is not a text of at most {_MAX_TEXT} characters")
    return value


def _stamp(value: Any, what: str) -> str:
    text = _text(value, what) or ""
    try:
        datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        raise CorruptFileError(f"receipt: {what} {text[:40]!r} is not a UTC time") from None
    return text


@dataclass(frozen=True)
class Receipt:
    """A parsed receipt: the JSON as written, checked, plus its digest (its id)."""

    body: dict[str, Any]
    digest: str

    @property
    def backup(self) -> str:
        return str(self.body["backup"].get("file") or "?")

    @property
    def opened(self) -> str:
        return str(self.body["opened"])

    def items(self) -> list[tuple[RevealedItem, str, str]]:
        """Every (item, first time, how) the receipt names, once each, in the order revealed."""
        seen: dict[str, tuple[RevealedItem, str, str]] = {}
        for event in self.body["events"]:
            how = event["action"] + (f" ({event['format']})" if event.get("format") else "")
            for item in event["items"]:
                key = item["id"]
                if key not in seen:
                    seen[key] = (RevealedItem(key, item["name"], item["type"]), event["time"], how)
        return list(seen.values())


def _check_event(event: Any, number: int) -> dict[str, Any]:
    if not isinstance(event, dict):
        raise CorruptFileError(f"receipt: event {number} is not an object")
    if event.get("action") not in ACTIONS:
        raise CorruptFileError(
            f"receipt: event {number} has action {str(event.get('action'))[:40]!r}"
            f" (one of {', '.join(ACTIONS)})"
        )
    _stamp(event.get("time"), f"event {number} time")
    _text(event.get("format"), f"event {number} format", optional=True)
    items = event.get("items")
    if not isinstance(items, list):
        raise CorruptFileError(f"receipt: event {number} has no item list")
    for item in items:
        if not isinstance(item, dict):
            raise CorruptFileError(f"receipt: event {number} lists an item that is not an object")
        for key in ("id", "name", "type"):
            _text(item.get(key), f"event {number} item {key}")
    return event


def parse_receipt(data: bytes) -> Receipt:
    """A receipt from a file's bytes; CorruptFileError saying what is wrong with it."""
    if len(data) > MAX_RECEIPT:
        raise CorruptFileError(f"receipt is larger than {MAX_RECEIPT:,} bytes")
    try:
        body: Any = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise CorruptFileError("receipt is not valid JSON") from None
    if not isinstance(body, dict) or body.get("format") != RECEIPT_FORMAT:
        raise CorruptFileError("not a Sealbox break-glass receipt")
    if body.get("version") != RECEIPT_VERSION:
        raise CorruptFileError(
            f"receipt version {body.get('version')!r} is not supported (this Sealbox reads"
            f" {RECEIPT_VERSION})"
        )
    _stamp(body.get("opened"), "opened")
    for key in ("opener", "machine", "key_id"):
        _text(body.get(key), key, optional=key != "opener")
    backup = body.get("backup")
    if not isinstance(backup, dict):
        raise CorruptFileError("receipt: backup is not an object")
    for key in ("file", "appliance", "created", "sha256"):
        _text(backup.get(key), f"backup {key}", optional=True)
    shares = body.get("shares")
    if not isinstance(shares, list) or not all(
        isinstance(s, dict)
        and isinstance(s.get("identifier"), int)
        and isinstance(s.get("index"), int)
        for s in shares
    ):
        raise CorruptFileError("receipt: shares is not a list of {identifier, index}")
    events = body.get("events")
    if not isinstance(events, list):
        raise CorruptFileError("receipt: events is not a list")
    for number, event in enumerate(events, 1):
        _check_event(event, number)
    digest = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return Receipt(body=body, digest=digest)


def new_receipt(
    *,
    backup: dict[str, str | None],
    key_id: str | None,
    signer: str | None,
    verified: bool,
    shares: list[tuple[int, int]],
    opener_version: str,
) -> dict[str, Any]:
    """The start of a receipt written by ``breakglass open`` (events are appended to it).
    ``shares``: (identifier, 1-based index) of each share used."""
    return {
        "format": RECEIPT_FORMAT,
        "version": RECEIPT_VERSION,
        "opener": "cli",
        "opener_version": opener_version,
        "machine": machine_description(),
        "opened": utc_now(),
        "backup": backup,
        "key_id": key_id,
        "signer": signer,
        "verified": verified,
        "shares": [{"identifier": i, "index": n} for i, n in shares],
        "events": [],
    }


def add_event(
    receipt: dict[str, Any], action: str, items: list[dict[str, Any]], fmt: str | None = None
) -> None:
    event: dict[str, Any] = {
        "time": utc_now(),
        "action": action,
        "items": [
            {
                "id": str(i.get("id")),
                "name": str(i.get("name") or ""),
                "type": str(i.get("type") or ""),
            }
            for i in items
        ],
    }
    if fmt:
        event["format"] = fmt
    receipt["events"].append(event)
