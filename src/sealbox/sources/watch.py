"""Change markers: a cheap value per source that changes when its secrets do, so the daemon can
back up soon after a rotation without reading every secret every few seconds.

- an SQL source: its ``watch_query`` (``SELECT MAX(updated_at) FROM items``, a change counter);
- a JSON or KDBX source: its file's modification time, size and inode (or ``watch_file``);
- a command source: its ``watch_file``, if it names one.

A source without any of these is not watched (the schedule alone backs it up).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sealbox.config.models import CommandSource, JsonSource, KdbxSource, SqlSource
from sealbox.errors import SourceError
from sealbox.sources.sql import change_marker

__all__ = ["WATCH_STATE", "markers", "watched"]

WATCH_STATE = "watch.json"  # in state_dir: the daemon's watch (written by sealbox.daemon.watch)


def _file_marker(name: str, path: Path) -> str:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise SourceError(f"source {name!r}: cannot watch {path}: {exc.strerror}") from exc
    return f"{st.st_mtime_ns}:{st.st_size}:{st.st_ino}"


def _marker(source: Any) -> str | None:
    if isinstance(source, SqlSource):
        return change_marker(source)
    if isinstance(source, JsonSource | KdbxSource):
        return _file_marker(source.name, source.watch_file or source.path)
    if isinstance(source, CommandSource) and source.watch_file is not None:
        return _file_marker(source.name, source.watch_file)
    return None


def watched(sources: list[Any]) -> list[str]:
    """The names of the sources that have a change marker."""
    return [
        s.name
        for s in sources
        if (isinstance(s, SqlSource) and s.watch_query)
        or isinstance(s, JsonSource | KdbxSource)
        or (isinstance(s, CommandSource) and s.watch_file)
    ]


def markers(sources: list[Any]) -> dict[str, str]:
    """Each watched source's marker now (SourceError when one cannot be read)."""
    found: dict[str, str] = {}
    for source in sources:
        value = _marker(source)
        if value is not None:
            found[source.name] = value
    return found
