"""The plaintext secrets document (``docs/design/format.md``, "Secrets document").

It is the JSON that ``age -d`` yields, so it is the contract with custodians who open a backup with
standard tools only: keep it readable, versioned, and stable.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson

from sealbox.errors import CorruptFileError
from sealbox.items import ITEM_TYPES, Item

__all__ = ["FORMAT", "VERSION", "Document", "build", "parse"]

FORMAT = "sealbox-secrets"
VERSION = 1


def counts_of(items: list[Item]) -> dict[str, int]:
    counter = Counter(item.type for item in items)
    return {t: counter.get(t, 0) for t in ITEM_TYPES}


def build(
    items: list[Item],
    *,
    appliance: str,
    created: str,
    keys: list[dict[str, str]],
    sealbox_version: str,
) -> bytes:
    """Serialise the document; items keep their order."""
    return orjson.dumps(
        {
            "format": FORMAT,
            "version": VERSION,
            "appliance": appliance,
            "created": created,
            "sealbox_version": sealbox_version,
            "keys": keys,
            "counts": counts_of(items),
            "total": len(items),
            "items": items,
        }
    )


@dataclass
class Document:
    appliance: str
    created: str
    keys: list[dict[str, str]]
    counts: dict[str, int]
    items: list[dict[str, Any]]  # kept as parsed dicts: fast to search, no copy

    def find(self, item_id: str) -> dict[str, Any] | None:
        return next((i for i in self.items if i.get("id") == item_id), None)

    def search(self, term: str, field: str | None = None) -> list[dict[str, Any]]:
        """Items whose name, host, URL, username or a tag contains ``term`` (case-insensitive)."""
        needle = term.casefold()
        fields = (field,) if field else ("name", "host", "url", "username")
        found = []
        for item in self.items:
            if field in (None, "tag") and any(
                needle in t.casefold() for t in item.get("tags") or ()
            ):
                found.append(item)
                continue
            if field == "tag":
                continue
            for name in fields:
                value = item.get(name)
                if value and needle in value.casefold():
                    found.append(item)
                    break
        return found


def parse(data: bytes) -> Document:
    """Parse a decrypted document; CorruptFileError if it is not one we understand."""
    try:
        doc: Any = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CorruptFileError("the decrypted backup is not valid JSON") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CorruptFileError("the decrypted file is not a Sealbox secrets document")
    if doc.get("version") != VERSION:
        raise CorruptFileError(
            f"secrets document version {doc.get('version')!r} is not supported by this Sealbox"
            f" (it reads version {VERSION}); use a newer sealbox, or `age -d` to get the JSON"
        )
    items = doc.get("items")
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise CorruptFileError("the secrets document has no valid item list")
    return Document(
        appliance=str(doc.get("appliance", "")),
        created=str(doc.get("created", "")),
        keys=list(doc.get("keys") or []),
        counts=dict(doc.get("counts") or {}),
        items=items,
    )
