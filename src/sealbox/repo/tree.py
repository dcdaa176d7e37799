"""Tree blobs: one per directory, a JSON list of nodes sorted by name (docs/design/format.md).

File names are bytes on Linux; a name that is valid UTF-8 is stored as ``name``, any other as
``name_b64``. :func:`decode_tree` is the one way in for every reader (restore, check): it refuses a
tree with an unsafe name (``/``, ``.``, ``..``, NUL, empty), an unknown node type, or the same name
twice. Two nodes with one name are how a forged tree steers a restore: the second replaces the
first on disk, and whatever is applied later "by name" lands on the replacement (a symlink).
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from typing import Any

import orjson

from sealbox.errors import CorruptFileError

__all__ = ["NODE_TYPES", "decode_tree", "encode_tree", "node_name", "set_node_name"]

NODE_TYPES = frozenset({"file", "dir", "symlink", "fifo", "chardev", "blockdev", "socket"})


def set_node_name(node: dict[str, Any], name: str) -> None:
    raw = os.fsencode(name)
    try:
        node["name"] = raw.decode("utf-8")
    except UnicodeDecodeError:
        node["name_b64"] = base64.b64encode(raw).decode()


def node_name(node: dict[str, Any]) -> str:
    """The node's file name, validated: it can never escape its directory."""
    try:
        if "name_b64" in node:
            raw = base64.b64decode(str(node["name_b64"]), validate=True)
        else:
            raw = str(node.get("name", "")).encode("utf-8")
    except (binascii.Error, UnicodeEncodeError, TypeError, ValueError):
        raise CorruptFileError(
            "refusing a file name that does not decode in a snapshot tree"
        ) from None
    if not raw or raw in (b".", b"..") or b"/" in raw or b"\0" in raw:
        raise CorruptFileError(f"refusing unsafe file name {raw[:60]!r} in a snapshot tree")
    return os.fsdecode(raw)


def encode_tree(nodes: list[dict[str, Any]]) -> bytes:
    nodes.sort(key=lambda n: n.get("name") or n.get("name_b64") or "")
    return orjson.dumps({"nodes": nodes})


def decode_tree(data: bytes | bytearray, what: str) -> list[dict[str, Any]]:
    """The nodes of a tree blob; ``what`` (the directory) names it in errors.

    Raises CorruptFileError for malformed JSON, an unsafe or duplicate name, an unknown type.
    """
    try:
        doc: Any = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CorruptFileError(f"{what}: tree is not valid JSON") from exc
    nodes = doc.get("nodes") if isinstance(doc, dict) else None
    if not isinstance(nodes, list) or not all(isinstance(n, dict) for n in nodes):
        raise CorruptFileError(f"{what}: malformed tree")
    seen: set[str] = set()
    for node in nodes:
        try:
            name = node_name(node)
        except CorruptFileError as exc:
            raise CorruptFileError(f"{what}: {exc}") from None
        if name in seen:
            raise CorruptFileError(f"{what}: the tree lists {name!r} twice (forged or damaged)")
        seen.add(name)
        if node.get("type") not in NODE_TYPES:
            raise CorruptFileError(
                f"{what}: {name!r} has an unknown type {str(node.get('type'))[:20]!r}"
            )
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
