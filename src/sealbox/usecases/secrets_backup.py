"""Use case: the break-the-glass secrets backup (``sealbox backup secrets``).

Order of writes at the destination, so that a crash at any point leaves no half backup: the
signature and the manifest first, then the encrypted file (exclusive create; the ``.age`` name is
what readers look for), then retention. Leftover side files of an interrupted run are removed by
the next one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sealbox import __version__
from sealbox.backends import Backend
from sealbox.backends.base import append_only, read_bounded, sweep_temporaries
from sealbox.breakglass import changes, document, opener_html, package
from sealbox.breakglass.opener import MAX_MANIFEST
from sealbox.config.models import Config, JsonSource, KdbxSource, SqlSource
from sealbox.crypto import agekeys
from sealbox.destinations.placement import check_destination
from sealbox.destinations.recipients import recipients_for
from sealbox.destinations.repos import destination_backend
from sealbox.destinations.sizing import record_sample
from sealbox.errors import ConfigError, CorruptFileError, NotFoundError
from sealbox.items import Item
from sealbox.keys.store import Keystore
from sealbox.schedule import parse_duration
from sealbox.sources import collect
from sealbox.usecases.cluster import fence

__all__ = [
    "SecretsBackupResult",
    "apply_retention",
    "backup_key_ids",
    "list_backups",
    "run",
]

SIDE_SUFFIXES = (".sig", ".manifest.json", changes.SUFFIX)


@dataclass
class SecretsBackupResult:
    name: str
    destination: str
    size: int
    total: int
    counts: dict[str, int]
    keys: list[document.KeyRecord]
    deleted: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def _source_paths(config: Config) -> list[Path]:
    paths: list[Path] = []
    for source in config.secrets.sources if config.secrets else []:
        if isinstance(source, KdbxSource | JsonSource):
            paths.append(source.path)
        elif isinstance(source, SqlSource) and source.url.startswith("sqlite:///"):
            paths.append(Path(source.url.removeprefix("sqlite:///").split("?")[0]))
    return paths


def list_backups(backend: Backend, appliance: str) -> list[str]:
    """Names of this appliance's secrets backups at the destination, newest first."""
    names = []
    for info in backend.list(f"secrets-{appliance}-"):
        parsed = package.parse_backup_name(info.name)
        if parsed and parsed[0] == appliance:
            names.append((parsed[1], parsed[2], info.name))
    return [n for _, _, n in sorted(names, reverse=True)]


def apply_retention(
    backend: Backend,
    appliance: str,
    keep_last: int | None,
    keep_within: str | None,
    now: datetime,
    protect: str,
    *,
    keep_at_least: str | None = None,
    delete_after: str | None = None,
    why: dict[str, str] | None = None,
) -> list[str]:
    """Delete backups no rule keeps; never ``protect`` (the one just written). Returns deleted.
    The age limits win over keep_last/keep_within: ``delete_after`` deletes what is older (but
    never ``protect``), ``keep_at_least`` keeps what is younger; ``why`` receives, per backup
    they moved, which limit did. On an append-only destination nothing is deleted (the storage
    side applies retention)."""
    if append_only(backend):
        return []
    names = list_backups(backend, appliance)
    if keep_last is None and keep_within is None:
        keep = set(names)  # no rule: every backup stays (leftover side files still go)
    else:
        keep = set(names[: keep_last or 0]) | {protect}
    times = {name: _backup_time(name) for name in names}
    if keep_within:
        horizon = now - parse_duration(keep_within)
        for name in names:
            stamp = times[name]
            if stamp is not None and stamp >= horizon:
                keep.add(name)
    reasons: dict[str, str] = {} if why is None else why
    if delete_after:
        limit = now - parse_duration(delete_after)
        for name in names:
            stamp = times[name]
            if name in keep and name != protect and stamp is not None and stamp < limit:
                keep.discard(name)
                reasons[name] = f"older than delete_after ({delete_after})"
    if keep_at_least:
        limit = now - parse_duration(keep_at_least)
        for name in names:
            stamp = times[name]
            if name not in keep and stamp is not None and stamp >= limit:
                keep.add(name)
                reasons[name] = f"younger than keep_at_least ({keep_at_least})"
    deleted = []
    for name in names:
        if name not in keep:
            backend.delete(name)  # the .age first: once it is gone the backup no longer exists
            for suffix in SIDE_SUFFIXES:
                backend.delete(name + suffix)
            deleted.append(name)
    # Side files whose .age never landed (a run interrupted between writes).
    present = set(list_backups(backend, appliance))
    for info in backend.list(f"secrets-{appliance}-"):
        for suffix in SIDE_SUFFIXES:
            base = info.name.removesuffix(suffix)
            if info.name.endswith(suffix) and base not in present and base != protect:
                backend.delete(info.name)
    return deleted


def _backup_time(name: str) -> datetime | None:
    stamp = package.parse_backup_name(name)
    return datetime.strptime(stamp[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC) if stamp else None


def _free_name(backend: Backend, appliance: str, stamp: str) -> str:
    """A new name that sorts after every existing backup of the same second."""
    taken = [
        parsed[2]
        for info in backend.list(f"secrets-{appliance}-{stamp}")
        if (
            parsed := package.parse_backup_name(
                info.name.removesuffix(".sig")
                .removesuffix(".manifest.json")
                .removesuffix(changes.SUFFIX)
            )
        )
        and parsed[1] == stamp
    ]
    return package.backup_name(appliance, stamp, max(taken) + 1 if taken else 0)


def run(
    config: Config, destination: str | None = None, now: datetime | None = None
) -> SecretsBackupResult:
    """Export, encrypt, sign and store one secrets backup; then apply retention."""
    if config.secrets is None:
        raise ConfigError("no [secrets] section in the config: nothing to back up")
    section = config.secrets
    dest_name = destination or section.destination
    dest = config.destinations.get(dest_name)
    if dest is None:
        raise ConfigError(f"no destination named {dest_name!r} in the config")
    timings: dict[str, float] = {}
    started = time.perf_counter()
    keystore = Keystore(config.appliance.state_dir)
    keys = recipients_for(config, keystore)
    signer = keystore.signing_key()
    warnings = check_destination(
        dest_name,
        dest.url,
        dest.allow_on_appliance,
        [config.appliance.state_dir, config.appliance.var_dir, *_source_paths(config)],
    )
    backend = destination_backend(config, dest_name)
    try:
        # Fails fast when unreachable, before any secret; then what an interrupted run left.
        list_backups(backend, config.appliance.name)
        sweep_temporaries(backend, recursive=False)

        mark = time.perf_counter()
        now = now or datetime.now(UTC)
        created = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        changed: list[tuple[str, str | None]] = []  # ids and change times: the change list

        def noted(items: Iterator[Item]) -> Iterator[Item]:
            for item in items:
                changed.append((item.id, item.updated))
                yield item

        plaintext, counts = document.encode(
            noted(collect(list(section.sources))),
            appliance=config.appliance.name,
            created=created,
            keys=keys,
            sealbox_version=__version__,
        )
        timings["export"] = time.perf_counter() - mark
        mark = time.perf_counter()
        try:
            ciphertext = agekeys.encrypt(plaintext, [k["recipient"] for k in keys])
        finally:
            agekeys.wipe(plaintext)
            del plaintext
        timings["encrypt"] = time.perf_counter() - mark

        mark = time.perf_counter()
        name = _free_name(backend, config.appliance.name, now.strftime("%Y%m%dT%H%M%SZ"))
        sealed = package.seal(
            ciphertext,
            name=name,
            appliance=config.appliance.name,
            created=created,
            keys=keys,
            counts=counts,
            signer=signer,
            sealbox_version=__version__,
            endorsements=keystore.endorsements(),
        )
        fence(config)  # a node that lost its cluster lease publishes nothing
        written: list[str] = []
        try:
            change_list = changes.seal(
                file=name,
                appliance=config.appliance.name,
                created=created,
                items=changed,
                signer=signer,
                endorsements=keystore.endorsements(),
            )
            for part, data in (
                (".sig", sealed.signature.encode()),
                (".manifest.json", sealed.manifest),
                (changes.SUFFIX, change_list),
            ):
                backend.put(name + part, data, exclusive=True)
                written.append(name + part)
            backend.flush()
            backend.put(name, sealed.ciphertext, exclusive=True)
            backend.flush()
        except BaseException:
            # Only what this run wrote: an exclusive put that failed may have met another run's file.
            for leftover in written:
                with contextlib.suppress(Exception):  # best effort; the next run removes leftovers
                    backend.delete(leftover)
            raise
        timings["store"] = time.perf_counter() - mark
        # The browser opener beside the backups, so custodians find it with them (best effort).
        placed = opener_html.place_beside(backend)
        if placed:
            warnings.append(placed)

        record_sample(config.appliance.state_dir, dest_name, backend, added=len(sealed.ciphertext))
        deleted = apply_retention(
            backend,
            config.appliance.name,
            section.keep_last,
            section.keep_within,
            now,
            name,
            keep_at_least=section.keep_at_least,
            delete_after=section.delete_after,
        )
    finally:
        backend.close()
    timings["total"] = time.perf_counter() - started
    return SecretsBackupResult(
        name=name,
        destination=backend.display,
        size=len(sealed.ciphertext),
        total=sum(counts.values()),
        counts=counts,
        keys=keys,
        deleted=deleted,
        warnings=warnings,
        seconds=timings,
    )


def backup_key_ids(backend: Backend, appliance: str) -> list[tuple[str, list[str]]]:
    """(backup name, key ids it was made for) from each retained backup's manifest."""
    out: list[tuple[str, list[str]]] = []
    for name in list_backups(backend, appliance):
        try:
            data = read_bounded(backend, name + ".manifest.json", MAX_MANIFEST)
            manifest = package.parse_manifest(data)
        except (NotFoundError, CorruptFileError):
            out.append((name, []))
            continue
        keys = manifest.get("keys")
        ids = (
            [str(k.get("id")) for k in keys if isinstance(k, dict)]
            if isinstance(keys, list)
            else []
        )
        out.append((name, ids))
    return out
