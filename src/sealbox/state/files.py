"""Small JSON state files under ``state_dir`` (probes, sizing, daemon, alerts): read leniently,
written atomically (a temporary name, then rename), so a crash never leaves half a file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

__all__ = ["read_json", "write_json"]


def read_json(path: Path, default: Any = None) -> Any:
    """The file's JSON; ``default`` (``{}`` if not given) when it is missing or unreadable, or
    when it holds another type than the default's."""
    fallback = {} if default is None else default
    try:
        doc: Any = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return fallback
    return doc if isinstance(doc, type(fallback)) else fallback


def write_json(path: Path, doc: Any, *, indent: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 if indent else 0))
    os.replace(tmp, path)
