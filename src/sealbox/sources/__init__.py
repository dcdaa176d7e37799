"""Secret sources: each module reads one kind of store and yields items.

Every reader takes its config model and returns an iterator of items (a large vault is streamed,
never held twice); any failure is a
:class:`~sealbox.errors.SourceError` naming the source, never showing a secret or a password.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from sealbox.config.models import CommandSource, JsonSource, KdbxSource, SqlSource
from sealbox.errors import SourceError
from sealbox.items import Item

__all__ = ["collect", "read_source"]


def _reader(source: Any) -> Callable[[Any], Iterator[Item]]:
    # Imported on use: a source's driver (SQLAlchemy, pykeepass) costs start-up time.
    if isinstance(source, SqlSource):
        from sealbox.sources import sql as module
    elif isinstance(source, KdbxSource):
        from sealbox.sources import kdbx as module  # type: ignore[no-redef]
    elif isinstance(source, JsonSource):
        from sealbox.sources import jsonfile as module  # type: ignore[no-redef]
    elif isinstance(source, CommandSource):
        from sealbox.sources import command as module  # type: ignore[no-redef]
    else:  # pragma: no cover - the config schema admits no other kind
        raise SourceError(f"unknown source kind {type(source).__name__}")
    reader: Callable[[Any], Iterator[Item]] = module.read
    return reader


def read_source(source: SqlSource | KdbxSource | JsonSource | CommandSource) -> Iterator[Item]:
    return _reader(source)(source)


def collect(sources: list[Any]) -> Iterator[Item]:
    """Items of every source, in order; ids must be unique across sources."""
    origin: dict[str, str] = {}
    for source in sources:
        for item in read_source(source):
            other = origin.get(item.id)
            if other is not None:
                raise SourceError(
                    f"item id {item.id!r} comes from both source {other!r} and {source.name!r}"
                    " (set id_prefix on one of them)"
                    if other != source.name
                    else f"source {source.name!r}: item id {item.id!r} appears twice"
                )
            origin[item.id] = source.name
            yield item
