"""Use case: ``sealbox backup recordings`` — store new finished recordings and extend the chain."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from sealbox.backends.base import read_bounded
from sealbox.config.models import Config
from sealbox.destinations.repos import (
    destination_of,
    open_product_repo,
    remember_keys,
    reusable_keys,
)
from sealbox.destinations.sizing import record_sample
from sealbox.errors import ConfigError, IntegrityError, NotFoundError
from sealbox.keys.store import Keystore
from sealbox.recordings import manifest
from sealbox.recordings.catalog import Catalog
from sealbox.recordings.scan import scan
from sealbox.repo import format as fmt
from sealbox.repo.backup import BackupResult, Progress, run_backup
from sealbox.repo.repository import Repository
from sealbox.usecases.cluster import fence

__all__ = ["RecordingsResult", "catalog_for", "run"]

BATCH_PREFIX = "recordings/batch-"


@dataclass
class RecordingsResult:
    stored: int = 0
    bytes: int = 0
    seen: int = 0
    waiting: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    head: str = manifest.GENESIS
    last_seq: int = 0
    backup: BackupResult | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def catalog_for(config: Config, repo: Repository) -> Catalog:
    return Catalog(config.appliance.state_dir / "recordings" / repo.config.id / "catalog.sqlite")


def metadata(path: Path, pattern: re.Pattern[str]) -> dict[str, Any]:
    """session/user/target from the file name, overridden by a sidecar FILE.json."""
    found: dict[str, Any] = {}
    match = pattern.search(path.name)
    if match:
        found.update({k: v for k, v in match.groupdict().items() if v})
    sidecar = path.with_name(path.name + ".json")
    try:
        doc: Any = orjson.loads(sidecar.read_bytes())
        if isinstance(doc, dict):
            found.update(
                {
                    k: str(doc[k])
                    for k in ("session", "user", "target", "started", "ended")
                    if doc.get(k)
                }
            )
    except (OSError, orjson.JSONDecodeError):
        pass
    return found


def run(
    config: Config, destination: str | None = None, progress: Progress | None = None
) -> RecordingsResult:
    import time

    if config.recordings is None:
        raise ConfigError("no [recordings] section in the config: nothing to back up")
    section = config.recordings
    started = time.perf_counter()
    root = section.path.absolute()
    if not root.is_dir():
        raise ConfigError(f"recordings.path: {root} is not a directory")
    dest = destination_of(config, "recordings", destination)
    repo, warnings = open_product_repo(config, dest, [root])
    catalog = catalog_for(config, repo)
    try:
        result = RecordingsResult(warnings=warnings)
        result.last_seq, result.head = _catch_up(repo, catalog, config)
        found = scan(root, catalog.known(), section.settle_seconds, list(section.exclude))
        result.seen, result.waiting, result.changed = found.total, found.waiting, found.changed
        result.seconds["scan"] = time.perf_counter() - started
        if not found.ready:
            return result
        files = [root / c.path for c in found.ready]
        backup = run_backup(
            repo,
            [root],
            state_dir=config.appliance.state_dir,
            kind="recordings",
            only_files=files,
            progress=progress,
            level=1,
            reusable_keys=reusable_keys(repo),
            extra={"recipients": sorted(repo.data_recipients)},
            before_publish=lambda: fence(config),
        )
        result.backup = backup
        remember_keys(repo, backup.snapshot)
        contents = _contents(backup)
        pattern = re.compile(section.name_pattern)
        entries: list[dict[str, Any]] = []
        seq = result.last_seq
        for candidate in found.ready:
            full = str(root / candidate.path)
            if full not in backup.digests:
                result.warnings.append(f"{candidate.path}: vanished before it was read")
                continue
            seq += 1
            info = metadata(root / candidate.path, pattern)
            entries.append(
                {
                    "seq": seq,
                    "path": candidate.path,
                    "size": candidate.size,
                    "mtime_ns": candidate.mtime_ns,
                    "digest": backup.digests[full],
                    "blobs": contents.get(full, []),
                    "session": info.get("session"),
                    "user": info.get("user"),
                    "target": info.get("target"),
                    "started": info.get("started"),
                    "ended": info.get("ended")
                    or datetime.fromtimestamp(candidate.mtime_ns / 1e9, UTC).isoformat(),
                    "snapshot": backup.snapshot.id,
                }
            )
        head = manifest.chain(result.head, entries)
        batch = manifest.Batch(
            repo=repo.config.id,
            first_seq=result.last_seq + 1,
            last_seq=seq,
            prev_head=result.head,
            head=head,
            time=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            entries=entries,
        )
        batch.sign(Keystore(config.appliance.state_dir).signing_key())
        repo.backend.flush()
        fence(config)  # the chain's head moves only under the lease the run started with
        repo.backend.put(
            f"{BATCH_PREFIX}{batch.first_seq:012d}",
            manifest.encode_batch(batch, repo.keys.index_key),
            exclusive=True,
        )
        repo.backend.flush()
        catalog.add([(e["path"], e["size"], e["mtime_ns"], e["seq"]) for e in entries], seq, head)
        result.stored, result.bytes = len(entries), sum(e["size"] for e in entries)
        result.last_seq, result.head = seq, head
        result.seconds["total"] = time.perf_counter() - started
        added = result.backup.bytes_added if result.backup else 0
        record_sample(config.appliance.state_dir, dest, repo.backend, added=added)
        return result
    finally:
        catalog.close()


def _catch_up(repo: Repository, catalog: Catalog, config: Config) -> tuple[int, str]:
    """A run that stored its batch but died before updating the catalog left the destination
    ahead: adopt those batches (ours, by signature) so sequence numbers never collide. This
    looks at the next expected batch name only, not at the whole destination."""
    last_seq, head = catalog.head()
    trust = Keystore(config.appliance.state_dir).trust()
    while True:
        name = f"{BATCH_PREFIX}{last_seq + 1:012d}"
        try:
            data = read_bounded(repo.backend, name, fmt.MAX_SIZE["recordings"])
        except NotFoundError:
            return last_seq, head
        batch = manifest.decode_batch(data, repo.keys.index_key, name)
        batch.verify_signature(trust)
        if batch.prev_head != head:
            raise IntegrityError(
                f"{name} does not follow this appliance's manifest head (run recordings verify)"
            )
        last_seq, head = batch.last_seq, batch.head
        catalog.add(
            [(e["path"], e["size"], e["mtime_ns"], e["seq"]) for e in batch.entries], last_seq, head
        )


def _contents(backup: BackupResult) -> dict[str, list[str]]:
    return dict(backup.contents)
