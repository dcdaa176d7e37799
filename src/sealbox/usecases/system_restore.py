"""Use case: reconstruct an appliance from a system snapshot (``sealbox restore system``).

Plan first (files, bytes, databases, free space needed against available: refuse early with the
numbers), then files with progress, then databases in their configured order (refusing to
overwrite one that exists unless ``replace``), each verified on the way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sealbox.config.models import Config
from sealbox.crypto.trust import Trust
from sealbox.databases import Database, database_for
from sealbox.destinations.repos import destination_of, open_product_repo_to_read
from sealbox.errors import ConfigError, NotFoundError, OutputError, SignatureError
from sealbox.keys.material import Unlocked
from sealbox.repo.backup import STREAM_DIR
from sealbox.repo.blobs import BlobReader
from sealbox.repo.repository import Index, Repository
from sealbox.repo.restore import (
    Entry,
    RestoreOptions,
    RestorePlan,
    RestoreResult,
    entry_content,
    plan_restore,
    run_restore,
)
from sealbox.usecases.system_backup import INVENTORY

__all__ = ["SystemRestore", "plan", "run"]


@dataclass
class SystemRestore:
    repo: Repository
    index: Index
    reader: BlobReader
    files: RestorePlan
    databases: list[tuple[dict[str, Any], Entry, Database | None]]
    load_databases: bool
    replace: bool
    target: Path
    warnings: list[str] = field(default_factory=list)

    @property
    def needed(self) -> int:
        return self.files.bytes

    def describe(self) -> dict[str, Any]:
        return {
            "snapshot": self.files.snapshot.id,
            "time": self.files.snapshot.time,
            "target": str(self.target),
            "files": self.files.files,
            "bytes": self.files.bytes,
            "free": self.files.free,
            "databases": [
                {
                    "label": meta["label"],
                    "file": meta["file"],
                    "bytes": int(entry.node.get("size", 0)),
                    "action": "load" if self.load_databases else "file",
                }
                for meta, entry, _ in self.databases
            ],
            "inventory": self.files.snapshot.extra.get("inventory", {}),
        }


def _open_repo(
    config: Config, destination: str | None, unlocked: Unlocked, trust: Trust | None
) -> Repository:
    dest = destination_of(config, "system", destination)
    return open_product_repo_to_read(config, dest, unlocked.identities, trust)


def _select(meta: list[dict[str, Any]], wanted: list[str] | None) -> list[dict[str, Any]]:
    if not wanted:
        return meta
    chosen = [
        m
        for m in meta
        if any(w == m["file"] or w in m["label"].split("/")[-1:] or w in m["label"] for w in wanted)
    ]
    if not chosen:
        raise NotFoundError(f"no database matching {', '.join(wanted)} in this snapshot")
    return chosen


def plan(
    config: Config,
    snapshot: str,
    target: Path,
    unlocked: Unlocked,
    *,
    includes: list[str] | None = None,
    databases: bool = False,
    database_files: bool = False,
    only: list[str] | None = None,
    replace: bool = False,
    destination: str | None = None,
    trust: Trust | None = None,
) -> SystemRestore:
    """The restore plan. ``trust``: the appliance signers to accept (default: this appliance's
    keystore). Database dumps are loaded only from a verified snapshot, whatever ``trust``
    accepts."""
    if databases and database_files:
        raise ConfigError(
            "choose --databases (load into the servers) or --database-files, not both"
        )
    repo = _open_repo(config, destination, unlocked, trust)
    index = repo.load_index()
    reader = BlobReader(repo, index, unlocked.identities)
    snap = repo.find_snapshot(snapshot, kind="system" if snapshot == "latest" else None)
    if databases and not snap.verified:
        raise SignatureError(
            f"snapshot {snap.id[:12]} is not verified (no pinned key signed it): refusing to load"
            " its database dumps into a server (restore them with --database-files to inspect)"
        )
    meta = (
        _select(list(snap.extra.get("databases", [])), only)
        if (databases or database_files or only)
        else []
    )
    if includes:  # patterns select files; the inventory and the chosen dumps come along
        includes = [
            *includes,
            f"/{STREAM_DIR}/{INVENTORY}",
            *(f"/{STREAM_DIR}/{m['file']}" for m in meta),
        ]
    files_plan = plan_restore(repo, index, reader, snap, target, includes)
    dumps = {
        e.path.rsplit("/", 1)[-1]: e
        for e in files_plan.entries
        if e.path.startswith(STREAM_DIR + "/")
    }
    selected: list[tuple[dict[str, Any], Entry, Database | None]] = []
    for item in sorted(meta, key=lambda m: m["position"]):
        entry = dumps.get(item["file"])
        if entry is None:
            raise NotFoundError(f"snapshot {snap.id[:12]} has no dump {item['file']}")
        handler = _handler(config, item) if databases else None
        selected.append((item, entry, handler))
    # Files to write: the selected paths and the inventory (it says what software to install
    # first); the dumps only when they go to files.
    keep = {STREAM_DIR, f"{STREAM_DIR}/{INVENTORY}"}
    keep |= {e.path for _, e, _ in selected} if database_files else set()
    files_plan.entries = [
        e for e in files_plan.entries if not e.path.startswith(STREAM_DIR) or e.path in keep
    ]
    files = [e for e in files_plan.entries if e.node.get("type") == "file"]
    files_plan.files, files_plan.bytes = len(files), sum(int(e.node.get("size", 0)) for e in files)
    return SystemRestore(repo, index, reader, files_plan, selected, databases, replace, target)


def _handler(config: Config, meta: dict[str, Any]) -> Database:
    """The configured database the dump goes back into (same kind and position in the config)."""
    section = config.system
    position = int(meta["position"])
    if (
        section is None
        or position > len(section.databases)
        or section.databases[position - 1].type != meta["type"]
    ):
        raise ConfigError(
            f"{meta['label']}: no matching [[system.databases]] entry #{position} in the config"
            " (restore it with --database-files instead)"
        )
    return database_for(section.databases[position - 1], position)


def run(
    restore: SystemRestore,
    on_bytes: Callable[[int], None] | None = None,
    options: RestoreOptions | None = None,
) -> RestoreResult:
    """Files (``options``: what privileged metadata to restore, format.md §16), then databases."""
    if restore.load_databases:
        for meta, _, handler in restore.databases:  # refuse before writing anything
            assert handler is not None
            if handler.exists() and not restore.replace:
                raise OutputError(
                    f"{meta['label']} exists: refusing to overwrite it (add --replace)"
                )
    result = run_restore(
        restore.repo,
        restore.index,
        restore.reader,
        restore.files,
        restore.target,
        on_bytes=on_bytes,
        options=options,
    )
    if restore.load_databases:
        for _, entry, handler in restore.databases:
            assert handler is not None
            handler.load(entry_content(restore.reader, entry, on_bytes), restore.replace)
    return result
