"""``sealbox copy [--to NAME]``: second copies of the backups at other destinations, verbatim and
without any private key (every object is sealed already).

A copy moves what the target lacks, so an interrupted one resumes where it stopped. It never
copies from a source that fails verification: the repository's config must be signed by a pinned
signer (this appliance's keystore), a snapshot is copied only when its signature is, and a
secrets backup only when its signature and manifest verify; each content-named object is checked
against its name before it is written. Publishing order at the target is the backup's (packs,
index files, reference lists and keys, then snapshots and recordings batches, then the config),
so a target never names what it does not hold. A source that looks empty while the target holds
backups is refused (an unmounted share copied over nothing would look like that).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NotRequired, TypedDict

from sealbox.backends.base import Backend, read_bounded, sweep_temporaries
from sealbox.breakglass import changes, opener_html, package
from sealbox.breakglass.opener import MAX_BACKUP, MAX_MANIFEST, MAX_SIGNATURE
from sealbox.config.models import Config, CopyConfig
from sealbox.destinations.repos import destination_backend, open_product_repo, parity_policy
from sealbox.errors import (
    ConfigError,
    CorruptFileError,
    DestinationError,
    NotFoundError,
    SealboxError,
)
from sealbox.keys.store import Keystore
from sealbox.repo import format as fmt
from sealbox.repo.heal import ParityBackend
from sealbox.state.files import read_json, write_json
from sealbox.usecases.holds import sync_legal_holds
from sealbox.usecases.secrets_backup import SIDE_SUFFIXES, list_backups

__all__ = ["CopyLag", "CopyResult", "RateLimit", "existing_names", "lags", "run"]

STATE = "copies.json"  # in state_dir: when each copy last completed

# Repository objects in publishing order: what a later group names comes earlier.
ORDER = ("data/", "index/", "refs/", "datakeys/", "keys/", "holds/", "snapshots/", "recordings/")
WORKERS = 4
CONTENT_NAMED = ("data/", "index/", "refs/", "datakeys/", "keys/", "holds/", "snapshots/")
LIMITS = {
    "data/": fmt.MAX_SIZE["pack"],
    "index/": fmt.MAX_SIZE["index"],
    "refs/": fmt.MAX_SIZE["refs"],
    "datakeys/": fmt.MAX_SIZE["datakeys"],
    "keys/": fmt.MAX_SIZE["keys"],
    "holds/": 64 << 10,
    "snapshots/": fmt.MAX_SIZE["snapshots"],
    "recordings/": fmt.MAX_SIZE["recordings"],
}


class CopyLag(TypedDict):
    """How far a copy is behind, for one kind (``status --json``: ``kinds[].copies``)."""

    to: str
    lag_snapshots: int  # backups (secrets) or snapshots at the source not at the copy
    lag_bytes: int  # their size
    last_copy: str | None  # when a copy to it last completed (UTC)
    error: NotRequired[str]  # the copy's destination could not be read


@dataclass
class CopyResult:
    source: str
    target: str
    objects: int = 0  # copied now
    bytes: int = 0
    present: int = 0  # already at the target
    skipped: list[str] = field(default_factory=list)  # refused, with the reason
    seconds: float = 0.0
    legal_hold_objects: int = 0  # S3 legal holds set at an Object Lock target (held snapshots)


class RateLimit:
    """At most ``rate`` bytes a second, on average since the copy began."""

    def __init__(self, rate: int | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.clock, self.sent = rate, clock, 0
        self.start = clock()
        self._lock = threading.Lock()

    def spend(self, n: int, sleep: Callable[[float], None] = time.sleep) -> None:
        with self._lock:
            self.sent += n
            ahead = self.sent / self.rate - (self.clock() - self.start) if self.rate else 0.0
        if ahead > 0:
            sleep(ahead)


def run(config: Config, to: str | None = None, rate_limit: int | None = None) -> list[CopyResult]:
    copies = [c for c in config.copies if to is None or c.to == to]
    if not copies:
        raise ConfigError(f"no [[copies]] to {to!r}" if to else "no [[copies]] in the config")
    results = [_one(config, copy, rate_limit or copy.rate_limit) for copy in copies]
    record = read_json(config.appliance.state_dir / STATE)
    for result in results:
        if not result.skipped:  # complete: nothing refused
            record[f"{result.source}>{result.target}"] = datetime.now(UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
    write_json(config.appliance.state_dir / STATE, record)
    return results


def lags(config: Config, kind: str, source: dict[str, int], destination: str) -> list[CopyLag]:
    """The copies of ``kind`` from ``destination`` and how far each is behind; ``source``: the
    names at the source (secrets backup names, or snapshot ids) and their sizes."""
    record = read_json(config.appliance.state_dir / STATE)
    found: list[CopyLag] = []
    for copy in config.copies:
        if copy.from_ != destination or kind not in copy.kinds:
            continue
        last = record.get(f"{copy.from_}>{copy.to}")
        lag = CopyLag(
            to=copy.to,
            lag_snapshots=0,
            lag_bytes=0,
            last_copy=last if isinstance(last, str) else None,
        )
        try:
            if kind == "secrets":
                have = set(_names(destination_backend(config, copy.to), "secrets-"))
            else:
                target = destination_backend(config, copy.to, repo=True)
                root = destination_backend(config, copy.to)
                have = {n.removeprefix("snapshots/") for n in _existing(target, root, "snapshots/")}
        except SealboxError as exc:
            lag["error"] = str(exc)
            found.append(lag)
            continue
        missing = [name for name in source if name not in have]
        lag["lag_snapshots"], lag["lag_bytes"] = len(missing), sum(source[n] for n in missing)
        found.append(lag)
    return found


def _one(config: Config, copy: CopyConfig, rate: int | None) -> CopyResult:
    started = time.monotonic()
    result = CopyResult(copy.from_, copy.to)
    limit = RateLimit(rate)
    stored = _kinds_at(config, copy.from_)
    if "secrets" in copy.kinds and "secrets" in stored:
        _copy_secrets(config, copy, result, limit)
    if any(k in copy.kinds and k in stored for k in ("system", "recordings")):
        _copy_repository(config, copy, result, limit)
    result.seconds = time.monotonic() - started
    return result


def _kinds_at(config: Config, destination: str) -> set[str]:
    parts = {"secrets": config.secrets, "system": config.system, "recordings": config.recordings}
    return {k for k, part in parts.items() if part is not None and part.destination == destination}


def _names(backend: Backend, prefix: str = "") -> Iterator[str]:
    for info in backend.list(prefix):
        yield info.name


def _sizes(backend: Backend, prefix: str = "") -> dict[str, int]:
    return {info.name: info.size for info in backend.list(prefix)}


def _put(
    target: Backend,
    name: str,
    data: bytes,
    result: CopyResult,
    limit: RateLimit,
    lock: threading.Lock | None = None,
) -> None:
    target.put(name, data)
    with lock or contextlib.nullcontext():
        result.objects += 1
        result.bytes += len(data)
    limit.spend(len(data))


def _existing(target: Backend, destination_root: Backend, prefix: str = "") -> dict[str, int]:
    """Names at the target and their sizes; none when its directory is not there yet (the
    destination itself must answer: an unreachable one is an error, not an empty copy)."""
    try:
        return _sizes(target, prefix)
    except DestinationError:
        next(iter(destination_root.list("")), None)  # raises when the destination is missing
        return {}


def existing_names(config: Config, destination: str, prefix: str, repo: bool = False) -> set[str]:
    """Names under ``prefix`` at a destination (its repository with ``repo``); none when the
    repository's directory is not there yet."""
    target = destination_backend(config, destination, repo=repo)
    return set(_existing(target, destination_backend(config, destination), prefix))


def _refuse_empty_source(source_count: int, have: Collection[str], what: str) -> None:
    if source_count == 0 and have:
        raise DestinationError(
            f"the source holds no {what} while the copy holds some: refusing to copy (an"
            " unmounted share, or the wrong destination?)"
        )


def _copy_repository(
    config: Config, copy: CopyConfig, result: CopyResult, limit: RateLimit
) -> None:
    source_backend = destination_backend(config, copy.from_, repo=True)
    # the copy keeps parity beside every object too (format.md §9a), computed afresh
    target = ParityBackend(destination_backend(config, copy.to, repo=True), parity_policy(config))
    have = _existing(target, destination_backend(config, copy.to))
    sweep_temporaries(target)  # what an interrupted copy left
    lock = threading.Lock()
    try:
        # Verifies the config's signature against this appliance's signers (raises otherwise).
        repo, _ = open_product_repo(config, copy.from_, [], create=False)
    except NotFoundError:
        _refuse_empty_source(0, have, "repository")
        return
    accepted, rejected = repo.scan_snapshots()
    refused = {f"snapshots/{r.name}" for r in rejected}
    result.skipped += [f"snapshot {r.name[:12]}: {r.reason}" for r in rejected]
    for prefix in ORDER:
        todo: list[str] = []
        for name, size in sorted(_sizes(source_backend, prefix).items()):
            if name in refused or "/." in name:
                continue
            if name in have:
                if have[name] != size:  # named the same, not the same bytes: not ours to fix
                    result.skipped.append(
                        f"{name}: {have[name]:,} bytes at the copy, {size:,} at the source"
                        " (a damaged copy? `sealbox check --destination`): left as it is"
                    )
                else:
                    result.present += 1
                continue
            todo.append(name)

        def one(name: str, prefix: str = prefix) -> None:
            data = read_bounded(source_backend, name, LIMITS[prefix], name)
            if prefix in CONTENT_NAMED and fmt.content_name(data) != name.rsplit("/", 1)[-1]:
                with lock:
                    result.skipped.append(f"{name}: does not match its name (damaged): not copied")
                return
            _put(target, name, data, result, limit, lock)

        # Objects of a group are independent: a few at a time (reads and writes release the GIL;
        # at most WORKERS objects of at most a pack's size are in memory).
        with ThreadPoolExecutor(WORKERS, thread_name_prefix="sealbox-copy") as pool:
            for future in [pool.submit(one, name) for name in todo]:
                future.result()
        target.flush()  # each group durable before the next names it
    if not accepted and not refused:
        _refuse_empty_source(0, {n for n in have if n.startswith("snapshots/")}, "snapshots")
    if "config" not in have:
        config_bytes = read_bounded(source_backend, "config", fmt.MAX_SIZE["config"], "config")
        target.put("config", config_bytes, exclusive=True)  # last: a repository exists once it does
        result.objects += 1
        result.bytes += len(config_bytes)
    if getattr(target, "legal_holds", False) and any(
        n.startswith("holds/") for n in _sizes(target, "holds/")
    ):
        # The holds came along; at an Object Lock target they hold the objects there too.
        held, _ = open_product_repo(config, copy.to, [], create=False)
        result.legal_hold_objects = sync_legal_holds(held)


def _copy_secrets(config: Config, copy: CopyConfig, result: CopyResult, limit: RateLimit) -> None:
    source = destination_backend(config, copy.from_)
    target = destination_backend(config, copy.to)
    names = list_backups(source, config.appliance.name)
    have = set(_names(target, f"secrets-{config.appliance.name}-"))
    _refuse_empty_source(len(names), have, "secrets backups")
    sweep_temporaries(target, recursive=False)
    trust = Keystore(config.appliance.state_dir).trust().require()
    at_source = set(_names(source, f"secrets-{config.appliance.name}-"))
    for name in reversed(names):  # oldest first: an interrupted copy has a prefix of history
        sides = [s for s in SIDE_SUFFIXES if name + s in at_source]
        if name in have and all(name + s in have for s in sides):
            result.present += 1
            continue
        change_list = None
        try:
            ciphertext = read_bounded(source, name, MAX_BACKUP, name)
            signature = read_bounded(source, name + ".sig", MAX_SIGNATURE, name + ".sig")
            manifest = read_bounded(source, name + ".manifest.json", MAX_MANIFEST, name)
            package.verify(ciphertext, signature.decode(), manifest, trust)
            if name + changes.SUFFIX in at_source:
                change_list = read_bounded(source, name + changes.SUFFIX, changes.MAX_CHANGES)
                changes.parse(change_list, trust, name + changes.SUFFIX)
        except (SealboxError, UnicodeDecodeError) as exc:
            result.skipped.append(f"{name}: {exc}: not copied")
            continue
        # The side files first: a backup exists at the target once its .age does.
        if change_list is not None:
            _put(target, name + changes.SUFFIX, change_list, result, limit)
        _put(target, name + ".manifest.json", manifest, result, limit)
        _put(target, name + ".sig", signature, result, limit)
        _put(target, name, ciphertext, result, limit)
    target.flush()
    opener = opener_html.destination_name()
    if opener not in set(_names(target, "sealbox-opener-")):
        try:
            data = read_bounded(source, opener, 16 << 20, opener)
        except NotFoundError:
            return
        if data == opener_html.opener_bytes():  # only the opener this version ships
            _put(target, opener, data, result, limit)
        else:
            raise CorruptFileError(f"{opener} at the source is not the opener this version ships")
