"""Tree blobs: one per directory, a JSON list of nodes sorted by name (docs/design/format.md).

File names are bytes on Linux; a name that is valid UTF-8 is stored as ``name``, any other as
``name_b64``. Restore validates every name (no ``/``, no ``.`` or ``..``, no NUL) before use.
"""

from __future__ import annotations

import base64
import os
import stat
from typing import Any

import orjson

from sealbox.errors import CorruptFileError

__all__ = ["decode_tree", "encode_tree", "node_name", "set_node_name"]


def set_node_name(node: dict[str, Any], name: str) -> None:
    raw = os.fsencode(name)
    try:
        node["name"] = raw.decode("utf-8")
    except UnicodeDecodeError:
        node["name_b64"] = base64.b64encode(raw).decode()


def node_name(node: dict[str, Any]) -> str:
    """The node's file name, validated: it can never escape its directory."""
    if "name_b64" in node:
        try:
            raw = base64.b64decode(node["name_b64"])
        except (ValueError, TypeError):  # binascii.Error is a ValueError
            raise CorruptFileError("a snapshot tree holds a name_b64 that is not base64") from None
    else:
        raw = str(node.get("name", "")).encode("utf-8")
    if not raw or raw in (b".", b"..") or b"/" in raw or b"\0" in raw:
        raise CorruptFileError(f"refusing unsafe file name {raw[:60]!r} in a snapshot tree")
    return os.fsdecode(raw)


def encode_tree(nodes: list[dict[str, Any]]) -> bytes:
    nodes.sort(key=lambda n: n.get("name") or n.get("name_b64") or "")
    return orjson.dumps({"nodes": nodes})


def decode_tree(data: bytes | bytearray, what: str) -> list[dict[str, Any]]:
    try:
        doc: Any = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CorruptFileError(f"{what}: tree is not valid JSON") from exc
    nodes = doc.get("nodes") if isinstance(doc, dict) else None
    if not isinstance(nodes, list) or not all(isinstance(n, dict) for n in nodes):
        raise CorruptFileError(f"{what}: malformed tree")
    return nodes


def kind_of(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISCHR(mode):
        return "chardev"
    if stat.S_ISBLK(mode):
        return "blockdev"
    return "socket"
