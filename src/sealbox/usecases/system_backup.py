"""Use case: the system backup (``sealbox backup system``): paths, live database dumps and an
inventory of the appliance, into the destination's repository."""

from __future__ import annotations

import hashlib
import socket
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from sealbox import __version__
from sealbox.config.models import Config
from sealbox.databases import database_for
from sealbox.databases.sqlite import SQLite
from sealbox.destinations.repos import (
    destination_backend,
    destination_of,
    open_product_repo,
    remember_keys,
    reusable_keys,
)
from sealbox.destinations.sizing import measure, record_sample
from sealbox.errors import ConfigError
from sealbox.repo.backup import BackupResult, Progress, Stream, bytes_stream, run_backup
from sealbox.usecases.cluster import fence
from sealbox.util.childenv import minimal_env

__all__ = [
    "INVENTORY",
    "SystemBackupResult",
    "inventory",
    "run",
]

INVENTORY = "inventory.json"


@dataclass
class SystemBackupResult:
    backup: BackupResult
    destination: str
    databases: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    sizing_warning: str | None = None


def _os_release() -> dict[str, str]:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return {}
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {k: v.strip().strip('"') for k, v in pairs}


def _packages() -> list[list[str]]:
    try:
        done = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Package}\\t${Version}\\n"],
            capture_output=True,
            env=minimal_env(),
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [
        line.split("\t", 1)
        for line in done.stdout.decode(errors="replace").splitlines()
        if "\t" in line
    ]


def inventory(config: Config) -> dict[str, Any]:
    """What a rebuild needs to know first: host, OS, Debian packages, Sealbox, config digest."""
    digest = hashlib.sha256(config.model_dump_json().encode()).hexdigest()
    return {
        "hostname": socket.gethostname(),
        "appliance": config.appliance.name,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "os": _os_release(),
        "packages": _packages(),
        "sealbox_version": __version__,
        "config_sha256": digest,
    }


def run(
    config: Config, destination: str | None = None, progress: Progress | None = None
) -> SystemBackupResult:
    if config.system is None:
        raise ConfigError("no [system] section in the config: nothing to back up")
    section = config.system
    dest = destination_of(config, "system", destination)
    databases = [database_for(db, n) for n, db in enumerate(section.databases, 1)]
    for db in databases:
        db.check()  # a missing tool or an unreachable server fails before anything is written
    sqlite_paths = [db.path for db in databases if isinstance(db, SQLite)]
    repo, warnings = open_product_repo(config, dest, [*section.paths, *sqlite_paths])
    info = inventory(config)
    streams: list[Stream] = [
        bytes_stream(INVENTORY, lambda: orjson.dumps(info, option=orjson.OPT_INDENT_2))
    ]
    streams += [db.dump() for db in databases]
    db_meta = [
        {"position": db.position, "type": db.config.type, "label": db.label, "file": db.file_name}
        for db in databases
    ]
    extra = {
        "appliance": config.appliance.name,
        "databases": db_meta,
        "inventory": {
            "os": info["os"].get("PRETTY_NAME", ""),
            "packages": len(info["packages"]),
            "sealbox_version": __version__,
            "config_sha256": info["config_sha256"],
        },
        "recipients": sorted(repo.data_recipients),
    }
    result = run_backup(
        repo,
        list(section.paths),
        state_dir=config.appliance.state_dir,
        excludes=list(section.exclude),
        kind="system",
        extra=extra,
        progress=progress,
        streams=streams,
        level=section.compression_level,
        reusable_keys=reusable_keys(repo),
        before_publish=lambda: fence(config),
    )
    remember_keys(repo, result.snapshot)
    record_sample(config.appliance.state_dir, dest, repo.backend, added=result.bytes_added)
    sizing = measure(
        config.appliance.state_dir,
        config.appliance.var_dir,
        dest,
        destination_backend(config, dest),
    )
    sizing_warning = sizing.warning()
    if sizing_warning:
        warnings.append(sizing_warning)
    return SystemBackupResult(
        result, repo.backend.display, db_meta, warnings + result.warnings, sizing_warning
    )
