"""``json`` source: a file in Sealbox's item schema (a list of items, or ``{"items": [...]}``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from sealbox.config.models import JsonSource
from sealbox.errors import SourceError
from sealbox.items import Item, item_from_dict

__all__ = ["items_from_json", "read"]


def items_from_json(data: bytes, source: str, id_prefix: str = "") -> list[Item]:
    """Parse and validate; SourceError names the source and the item index."""
    try:
        doc: Any = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise SourceError(f"source {source!r}: not valid JSON ({exc})") from exc
    if isinstance(doc, dict):
        doc = doc.get("items")
    if not isinstance(doc, list):
        raise SourceError(f"source {source!r}: expected a list of items or an object with 'items'")
    items = []
    for index, entry in enumerate(doc):
        try:
            items.append(item_from_dict(entry, source, id_prefix))
        except ValueError as exc:
            raise SourceError(f"source {source!r}: item #{index}: {exc}") from exc
    return items


def read(source: JsonSource) -> Iterator[Item]:
    try:
        data = source.path.read_bytes()
    except OSError as exc:
        raise SourceError(
            f"source {source.name!r}: cannot read {source.path}: {exc.strerror}"
        ) from exc
    return iter(items_from_json(data, source.name, source.id_prefix))
