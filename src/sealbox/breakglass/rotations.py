"""Rotation tasks from imported receipts: every credential an opener revealed must be rotated.

Kept in ``state_dir/breakglass/rotations.json`` (small JSON, atomic writes). An item stays open
until ``sealbox breakglass receipt done ITEM``; a later receipt that reveals it again reopens it,
while a receipt older than the rotation (imported late) leaves it done.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sealbox.breakglass.receipts import Receipt, utc_now
from sealbox.errors import NotFoundError
from sealbox.state.files import read_json, write_json

__all__ = ["Imported", "import_receipt", "mark_done", "open_rotations", "rotations_path"]


def rotations_path(state_dir: Path) -> Path:
    return state_dir / "breakglass" / "rotations.json"


def _load(state_dir: Path) -> dict[str, Any]:
    doc: dict[str, Any] = read_json(rotations_path(state_dir))
    doc.setdefault("receipts", {})
    doc.setdefault("items", {})
    return doc


@dataclass
class Imported:
    new: bool  # False: this receipt was imported before (nothing changed)
    revealed: int  # items the receipt names
    to_rotate: list[dict[str, Any]]  # the open rotation tasks after the import, oldest first


def import_receipt(state_dir: Path, receipt: Receipt) -> Imported:
    doc = _load(state_dir)
    items = receipt.items()
    if receipt.digest in doc["receipts"]:
        return Imported(False, len(items), open_rotations(state_dir))
    body = receipt.body
    doc["receipts"][receipt.digest] = {
        "imported": utc_now(),
        "backup": receipt.backup,
        "opened": receipt.opened,
        "opener": body.get("opener"),
        "machine": body.get("machine"),
        "shares": body.get("shares"),
        "items": len(items),
    }
    for item, when, how in items:
        task = doc["items"].get(item.id)
        if task is None:
            doc["items"][item.id] = {
                "id": item.id,
                "name": item.name,
                "type": item.type,
                "revealed": when,
                "how": how,
                "backup": receipt.backup,
                "receipts": [receipt.digest],
                "done": None,
            }
            continue
        task["receipts"].append(receipt.digest)
        if task["done"] and when > task["done"]:  # revealed again after it was rotated
            task.update(done=None, revealed=when, how=how, backup=receipt.backup)
        elif not task["done"] and when < task["revealed"]:
            task.update(revealed=when, how=how)
    write_json(rotations_path(state_dir), doc, indent=True)
    return Imported(True, len(items), open_rotations(state_dir))


def open_rotations(state_dir: Path) -> list[dict[str, Any]]:
    """The rotation tasks not marked done, the longest open first."""
    tasks = [
        t for t in _load(state_dir)["items"].values() if isinstance(t, dict) and not t.get("done")
    ]
    return sorted(tasks, key=lambda t: (str(t.get("revealed")), str(t.get("id"))))


def mark_done(state_dir: Path, item_id: str) -> dict[str, Any]:
    """Mark one item rotated; NotFoundError when no open task names it."""
    doc = _load(state_dir)
    task = doc["items"].get(item_id)
    if not isinstance(task, dict):
        raise NotFoundError(
            f"no rotation task for item {item_id!r} (see `sealbox breakglass receipt list`)"
        )
    if task.get("done"):
        raise NotFoundError(f"item {item_id!r} was marked rotated already, at {task['done']}")
    task["done"] = utc_now()
    write_json(rotations_path(state_dir), doc, indent=True)
    return dict(task)
