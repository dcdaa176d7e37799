"""The secret item: what every source produces and what a break-the-glass document holds.

Items are plain slotted dataclasses rather than pydantic models: a backup handles 100,000 of them
and orjson serialises dataclasses natively, so validation is done once, here, by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["ITEM_TYPES", "Item", "Version", "item_from_dict", "normalise_time"]

ITEM_TYPES = ("credential", "ssh_key", "secret", "cloud_key", "certificate", "other")


@dataclass(slots=True)
class Version:
    """An earlier value of an item's secret fields, and when that value was set."""

    time: str
    secret: dict[str, str]


@dataclass(slots=True)
class Item:
    id: str
    type: str
    name: str
    secret: dict[str, str]
    host: str | None = None
    url: str | None = None
    username: str | None = None
    tags: list[str] = field(default_factory=list)
    notes: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    updated: str | None = None
    source: str = ""
    # Older versions, oldest first: Version objects, or (from the SQL source) the same list
    # already encoded as JSON (an orjson.Fragment), which serialises identically.
    history: list[Version] | Any = field(default_factory=list)


def normalise_time(value: Any) -> str | None:
    """An ISO-8601 UTC string ("2026-11-26T06:00:00Z") from a datetime, epoch number or string.

    Times without a zone are taken as UTC. Called once per item and version (300,000 times for a
    large vault), so the common shapes take a fast path.
    """
    if value is None or value == "":
        return None
    if isinstance(value, str):
        if len(value) == 19 and value[4] == "-" and value[10] in " T" and value[13] == ":":
            return f"{value[:10]}T{value[11:]}Z"
        text: str = value
        if len(text) == 20 and text[19] == "Z" and text[10] == "T":
            return text
        try:
            value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            return text  # keep what the source said rather than lose it
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        stamp: str = value.isoformat(timespec="seconds") + "Z"
        return stamp
    return str(value)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _str_dict(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, str):
        return {"password": value}
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be an object of text values")
    return {str(k): _text(v) or "" for k, v in value.items() if v is not None}


def item_from_dict(data: Any, source: str, id_prefix: str = "") -> Item:
    """Validate one item in Sealbox's JSON item schema; raise ValueError saying what is wrong."""
    if not isinstance(data, dict):
        raise ValueError("an item must be a JSON object")
    if data.get("id") in (None, ""):
        raise ValueError("an item needs an 'id'")
    item_type = str(data.get("type") or "other")
    if item_type not in ITEM_TYPES:
        raise ValueError(
            f"item {data['id']!r}: unknown type {item_type!r} (one of {', '.join(ITEM_TYPES)})"
        )
    tags = data.get("tags") or []
    if isinstance(tags, str):
        tags = [t.strip() for t in tags.split(",") if t.strip()]
    history = []
    for version in data.get("history") or []:
        if not isinstance(version, dict):
            raise ValueError(f"item {data['id']!r}: a history entry must be an object")
        history.append(
            Version(
                time=normalise_time(version.get("time")) or "",
                secret=_str_dict(version.get("secret"), "history secret"),
            )
        )
    return Item(
        id=f"{id_prefix}{data['id']}",
        type=item_type,
        name=_text(data.get("name")) or str(data["id"]),
        secret=_str_dict(data.get("secret"), "secret"),
        host=_text(data.get("host")),
        url=_text(data.get("url")),
        username=_text(data.get("username")),
        tags=[str(t) for t in tags],
        notes=_text(data.get("notes")),
        fields=_str_dict(data.get("fields"), "fields"),
        updated=normalise_time(data.get("updated")),
        source=source,
        history=history,
    )
