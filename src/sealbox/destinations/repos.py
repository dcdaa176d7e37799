"""The product's repositories: one per destination, at ``<destination>/repo``, sealed to the
master key (keystore), the operator keys and the repository-only keys (config), created on first
use."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sealbox.backends import Backend, open_backend
from sealbox.backends.base import sweep_temporaries
from sealbox.backends.options import S3Options
from sealbox.config.models import Config
from sealbox.crypto.trust import Trust
from sealbox.destinations.placement import check_destination
from sealbox.destinations.recipients import repository_recipients_for
from sealbox.errors import ConfigError, NotFoundError
from sealbox.keys.store import Keystore
from sealbox.repo.parity import ParityPolicy, parse_policy
from sealbox.repo.repository import Repository, Snapshot
from sealbox.schedule import parse_duration
from sealbox.state.files import read_json, write_json

__all__ = [
    "destination_backend",
    "destination_of",
    "open_product_repo",
    "parity_policy",
    "remember_keys",
    "repo_url",
    "reusable_keys",
]


def repo_url(destination_url: str) -> str:
    """``<destination>/repo``: the path grows, the query (an S3 endpoint, say) stays."""
    if "://" not in destination_url:
        return destination_url.rstrip("/") + "/repo"
    parts = urlsplit(destination_url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/repo"))


def destination_backend(config: Config, name: str, repo: bool = False) -> Backend:
    """The backend of a configured destination (its root, or its repository), with its options.
    On S3 with Object Lock, objects are locked for at least the longest ``keep_at_least`` of the
    kinds stored there, so the storage enforces the minimum age that ``forget`` keeps."""
    dest = config.destinations[name]
    if isinstance(dest, S3Options) and dest.object_lock_days is not None:
        days = max([dest.object_lock_days, *_minimum_ages_in_days(config, name)])
        dest = dest.model_copy(update={"object_lock_days": days})
    return open_backend(repo_url(dest.url) if repo else dest.url, dest)


def _minimum_ages_in_days(config: Config, name: str) -> list[int]:
    ages = []
    if config.secrets is not None and config.secrets.destination == name:
        ages.append(config.secrets.keep_at_least)
    for part in (config.system, config.recordings):
        if part is not None and part.destination == name:
            ages.append(part.retention.keep_at_least)
    return [math.ceil(parse_duration(age) / timedelta(days=1)) for age in ages if age]


def destination_of(config: Config, section: str, override: str | None) -> str:
    part = getattr(config, section)
    if part is None:
        raise ConfigError(f"no [{section}] section in the config")
    name: str = override or part.destination
    if name not in config.destinations:
        raise ConfigError(f"no destination named {name!r} in the config")
    return name


def parity_policy(config: Config) -> ParityPolicy | None:
    """``[repository] parity`` (format.md §9a); the config model checked its shape."""
    try:
        return parse_policy(config.repository.parity)
    except ValueError as exc:
        raise ConfigError(f"repository.parity: {exc}") from exc


def open_product_repo(
    config: Config, destination: str, appliance_paths: list[Path], create: bool = True
) -> tuple[Repository, list[str]]:
    """The repository at a destination (created if missing), and the off-appliance warnings."""

    dest = config.destinations[destination]
    warnings = check_destination(
        destination,
        dest.url,
        dest.allow_on_appliance,
        [config.appliance.state_dir, config.appliance.var_dir, *appliance_paths],
    )
    state = config.appliance.state_dir
    backend = destination_backend(config, destination, repo=True)
    try:
        Repository.read_config(backend)
    except NotFoundError:
        if not create:
            raise
        recipients = [k["recipient"] for k in repository_recipients_for(config, Keystore(state))]
        Repository.init(backend, recipients, state, parity=parity_policy(config))
    repo = Repository.open_writer(backend, state)
    repo.backend.policy = parity_policy(config)
    if create:
        sweep_temporaries(backend)  # what an interrupted run left (a writing run: once, first)
        recipients = [k["recipient"] for k in repository_recipients_for(config, Keystore(state))]
        repo.seal_keys_to(recipients, state)
        repo.data_recipients = recipients
    return repo, warnings


def open_product_repo_to_read(
    config: Config, destination: str, identities: list[Any] | None, trust: Trust | None = None
) -> Repository:
    """The repository at a destination opened with a key (custodians' or an operator's) to read
    contents, accepting the signers ``trust`` pins; or, with no key, as this appliance's writer
    (its keystore's signers): structure and signed records only."""
    if identities is None:
        return open_product_repo(config, destination, [], create=False)[0]
    if trust is None:
        trust = Keystore(config.appliance.state_dir).trust().require()
    return Repository.open(destination_backend(config, destination, repo=True), identities, trust)


def reusable_keys(repo: Repository) -> set[bytes]:
    """Data keys of snapshots made for today's recipients: the only data new snapshots may
    share. After a key ceremony the first backup stores everything again, under the new key, so
    the new key alone opens every new snapshot.

    Kept in a local record (``state_dir/repos/ID/reusable-keys.json``) that each backup extends
    (:func:`remember_keys`), so a run need not list and read every snapshot (recordings runs
    every 15 minutes make 35,000 a year). A record made for other recipients, or none, means a
    full scan. A stale record can only cost deduplication (a key it lacks is not reused), never
    correctness; keys of pruned snapshots have no blobs left in the index to reuse."""
    current = sorted(repo.data_recipients)
    record = _keys_record(repo)
    if record is not None:
        doc = read_json(record)
        if doc.get("recipients") == current and isinstance(doc.get("keys"), list):
            return {bytes.fromhex(k) for k in doc["keys"]}
    keys: set[bytes] = set()
    for snapshot in repo.snapshots():
        made_for = snapshot.extra.get("recipients") or sorted(repo.config.recipients)
        if sorted(made_for) == current:
            keys.update(bytes.fromhex(k) for k in snapshot.data_keys)
    if record is not None:
        write_json(record, {"recipients": current, "keys": sorted(k.hex() for k in keys)})
    return keys


def remember_keys(repo: Repository, snapshot: Snapshot) -> None:
    """After a backup: its data keys join the record :func:`reusable_keys` reads."""
    record = _keys_record(repo)
    if record is None:
        return
    current = sorted(repo.data_recipients)
    made_for = sorted(snapshot.extra.get("recipients") or repo.config.recipients)
    doc = read_json(record)
    if doc.get("recipients") != current or made_for != current:
        return  # the next reusable_keys() rebuilds it
    doc["keys"] = sorted(set(doc.get("keys", [])) | set(snapshot.data_keys))
    write_json(record, doc)


def _keys_record(repo: Repository) -> Path | None:
    return None if repo.cache_dir is None else repo.cache_dir.parent / "reusable-keys.json"
