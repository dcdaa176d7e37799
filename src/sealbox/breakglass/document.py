"""The plaintext secrets document (``docs/design/format.md``, "Secrets document").

It is the JSON that ``age -d`` yields, so it is the contract with custodians who open a backup with
standard tools only: keep it readable, versioned, and stable.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any, TypedDict

import orjson

from sealbox.crypto.agekeys import wipe
from sealbox.errors import CorruptFileError
from sealbox.items import ITEM_TYPES, Item

__all__ = [
    "FORMAT",
    "VERSION",
    "Document",
    "KeyRecord",
    "build",
    "counts_of",
    "encode",
    "parse",
    "summary_of",
]

FORMAT = "sealbox-secrets"
VERSION = 1


class KeyRecord(TypedDict):
    """A recipient a backup is sealed to, as the header's ``keys`` lists it (format.md §4)."""

    id: str  # the key id (format.md §1)
    recipient: str  # age1...
    role: str  # "master", "recipient" (configured), "repository" (repositories only)


def counts_of(items: Iterable[Item]) -> dict[str, int]:
    counter = Counter(item.type for item in items)
    return {t: counter.get(t, 0) for t in ITEM_TYPES}


def encode(
    items: Iterable[Item],
    *,
    appliance: str,
    created: str,
    keys: list[KeyRecord],
    sealbox_version: str,
) -> tuple[bytearray, dict[str, int]]:
    """Serialise the document as items stream in; return it (a wipeable buffer) and the counts.

    Layout (docs/design/format.md): a header line ending in ``"items":[``, then one item per line,
    then a line starting with ``]`` that closes the array and carries ``counts`` and ``total``.
    It is ordinary JSON (``age -d ... | jq`` reads it); the line layout lets ``breakglass open``
    index items without turning every secret into a Python object.
    """
    head = {
        "format": FORMAT,
        "version": VERSION,
        "appliance": appliance,
        "created": created,
        "sealbox_version": sealbox_version,
        "keys": keys,
    }
    out = bytearray(orjson.dumps(head)[:-1])
    out += b',"items":[\n'
    counter: Counter[str] = Counter()
    for number, item in enumerate(items):
        if number:
            out += b",\n"
        out += orjson.dumps(item)  # compact JSON never holds a raw newline
        counter[item.type] += 1
    counts = {t: counter.get(t, 0) for t in ITEM_TYPES}
    out += (
        b"\n],"
        + b'"counts":'
        + orjson.dumps(counts)
        + b',"total":'
        + str(counter.total()).encode()
        + b"}"
    )
    return out, counts


def build(
    items: list[Item],
    *,
    appliance: str,
    created: str,
    keys: list[KeyRecord],
    sealbox_version: str,
) -> bytes:
    """The whole document as bytes (tests and small documents)."""
    data, _ = encode(
        items, appliance=appliance, created=created, keys=keys, sealbox_version=sealbox_version
    )
    return bytes(data)


SUMMARY_FIELDS = ("id", "type", "name", "host", "url", "username", "tags", "updated", "source")


def summary_of(item: dict[str, Any]) -> dict[str, Any]:
    """An item without its secret values (what list and search show)."""
    out = {k: item.get(k) for k in SUMMARY_FIELDS}
    out["versions"] = len(item.get("history") or []) + 1
    return out


class Document:
    """An opened secrets document.

    It keeps the decrypted JSON in one buffer and indexes items by their line; an item's secrets
    become Python strings only when that item is shown or exported. :meth:`close` wipes the buffer.
    """

    def __init__(
        self,
        header: dict[str, Any],
        buffer: bytearray,
        spans: list[tuple[int, int]] | None,
        parsed: list[dict[str, Any]] | None,
        summaries: list[dict[str, Any]],
    ) -> None:
        if not isinstance(header.get("keys") or [], list) or not isinstance(
            header.get("counts") or {}, dict
        ):
            raise CorruptFileError("the secrets document's keys or counts are malformed")
        self.appliance = str(header.get("appliance", ""))
        self.created = str(header.get("created", ""))
        self.keys: list[KeyRecord] = list(header.get("keys") or [])
        self.counts: dict[str, int] = dict(header.get("counts") or {})
        self.summaries = summaries
        self._buffer = buffer
        self._spans = spans
        self._parsed = parsed
        self._index = {s["id"]: n for n, s in enumerate(summaries)}

    def __len__(self) -> int:
        return len(self.summaries)

    def item(self, number: int) -> dict[str, Any]:
        if self._parsed is not None:
            return self._parsed[number]
        assert self._spans is not None
        start, end = self._spans[number]
        loaded: dict[str, Any] = orjson.loads(memoryview(self._buffer)[start:end])
        return loaded

    def iter_items(self) -> Iterator[dict[str, Any]]:
        for number in range(len(self.summaries)):
            yield self.item(number)

    def find(self, item_id: str) -> dict[str, Any] | None:
        number = self._index.get(item_id)
        return None if number is None else self.item(number)

    def search(self, term: str, field: str | None = None) -> list[dict[str, Any]]:
        """Summaries whose name, host, URL, username or a tag holds ``term`` (case-insensitive)."""
        needle = term.casefold()
        fields = (field,) if field and field != "tag" else ("name", "host", "url", "username")
        found = []
        for summary in self.summaries:
            if field in (None, "tag") and any(
                needle in str(t).casefold() for t in summary.get("tags") or ()
            ):
                found.append(summary)
                continue
            if field == "tag":
                continue
            for name in fields:
                value = summary.get(name)
                if value and needle in str(value).casefold():
                    found.append(summary)
                    break
        return found

    def close(self) -> None:
        """Wipe the decrypted JSON."""

        wipe(self._buffer)
        self._parsed = None


def _check_header(head: Any) -> dict[str, Any]:
    if not isinstance(head, dict) or head.get("format") != FORMAT:
        raise CorruptFileError("the decrypted file is not a Sealbox secrets document")
    if head.get("version") != VERSION:
        raise CorruptFileError(
            f"secrets document version {head.get('version')!r} is not supported by this Sealbox"
            f" (it reads version {VERSION}); use a newer sealbox, or `age -d` to get the JSON"
        )
    return head


def _summaries(items: Iterable[Any]) -> list[dict[str, Any]]:
    out = []
    for item in items:
        if not (
            isinstance(item, dict)
            and isinstance(item.get("id"), str)
            and all(isinstance(item.get(k) or [], list) for k in ("tags", "history"))
        ):
            raise CorruptFileError(
                "the secrets document holds an item that is not an object with an id"
                " (or whose tags or history are not lists)"
            )
        out.append(summary_of(item))
    return out


_ITEMS_OPEN = b',"items":[\n'


def _parse_lines(buffer: bytearray) -> Document | None:
    """Index a document in Sealbox's line layout; None if it is laid out otherwise."""
    first = buffer.find(b"\n")
    if first < 0 or not buffer[: first + 1].endswith(_ITEMS_OPEN):
        return None
    view = memoryview(buffer)
    try:
        head = _check_header(orjson.loads(bytes(view[: first + 1 - len(_ITEMS_OPEN)]) + b"}"))
        spans: list[tuple[int, int]] = []
        summaries: list[dict[str, Any]] = []
        pos = first + 1
        while True:
            end = buffer.find(b"\n", pos)
            if end == pos:  # the empty line of a document without items
                pos += 1
                continue
            if buffer[pos : pos + 1] == b"]":
                tail: Any = orjson.loads(b"{" + bytes(view[pos + 2 :]))
                head["counts"] = tail.get("counts")
                if tail.get("total") != len(spans):
                    raise CorruptFileError(
                        "the secrets document's item count does not match its items"
                    )
                break
            if end < 0:
                raise CorruptFileError("the secrets document is truncated")
            stop = end - 1 if buffer[end - 1 : end] == b"," else end
            summaries += _summaries([orjson.loads(view[pos:stop])])
            spans.append((pos, stop))
            pos = end + 1
    except orjson.JSONDecodeError as exc:
        raise CorruptFileError("the decrypted backup is not valid JSON") from exc
    finally:
        view.release()
    return Document(head, buffer, spans, None, summaries)


def parse(data: bytes | bytearray) -> Document:
    """Open a decrypted document; CorruptFileError if it is not one we understand.

    Takes ownership of ``data`` (a bytearray is wiped by :meth:`Document.close`).
    """
    buffer = data if isinstance(data, bytearray) else bytearray(data)
    document = _parse_lines(buffer)
    if document is not None:
        return document
    # Any other layout (say, re-indented by jq): parse it whole.
    try:
        doc: Any = orjson.loads(buffer)
    except orjson.JSONDecodeError as exc:
        raise CorruptFileError("the decrypted backup is not valid JSON") from exc
    head = _check_header(doc)
    items = doc.get("items")
    if not isinstance(items, list):
        raise CorruptFileError("the secrets document has no valid item list")
    return Document(head, buffer, None, items, _summaries(items))
