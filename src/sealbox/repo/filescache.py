"""The local files cache: path -> (size, mtime, ctime, inode, blob ids) of the last backup.

It lives on the appliance (``state_dir/repos/<repo id>/files-<kind>.json``), never in the repository:
the repository's trees are sealed and the appliance cannot read them back, so this is how an
unchanged file is recognised without reading it. An entry is used only if every blob it names is
still in the index (a prune may have removed them).
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path
from typing import Any

import orjson

__all__ = ["FilesCache"]


def _key(path: str) -> str:
    """A JSON-safe key: the path itself, or base64 of its bytes when it is not valid UTF-8."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "\0" + base64.b64encode(os.fsencode(path)).decode()
    return path


class FilesCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.old: dict[str, list[Any]] = {}
        self.new: dict[str, list[Any]] = {}

    def load(self) -> FilesCache:
        try:
            doc: Any = orjson.loads(self.path.read_bytes())
            if isinstance(doc, dict) and doc.get("version") == 1:
                self.old = doc.get("files", {})
        except (OSError, orjson.JSONDecodeError):
            self.old = {}  # a missing or damaged cache only costs re-reading files
        return self

    def lookup(self, path: str, st: os.stat_result) -> list[str] | None:
        entry = self.old.get(_key(path))
        if entry and entry[:4] == [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]:
            ids: list[str] = entry[4]
            return ids
        return None

    def remember(self, path: str, st: os.stat_result, ids: list[str]) -> None:
        self.new[_key(path)] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, ids]

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}")
        tmp.write_bytes(orjson.dumps({"version": 1, "files": self.new}))
        os.replace(tmp, self.path)
