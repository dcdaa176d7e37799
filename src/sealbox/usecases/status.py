"""Use case: ``sealbox status`` — every kind's last success, next run, size and destination
health, the sizing rule and its forecast, and what deserves a warning."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NotRequired, TypedDict

from sealbox.alerts.notifier import Notifier, recent_deliveries
from sealbox.backends.base import Backend
from sealbox.breakglass.package import parse_backup_name
from sealbox.breakglass.rotations import open_rotations
from sealbox.config.models import Config
from sealbox.destinations.probe import last_probes
from sealbox.destinations.repos import destination_backend, open_product_repo
from sealbox.destinations.sizing import measure
from sealbox.errors import NotFoundError, SealboxError
from sealbox.keys.store import Keystore
from sealbox.schedule import interval, next_run
from sealbox.sources.watch import WATCH_STATE
from sealbox.state.files import read_json
from sealbox.state.history import History
from sealbox.usecases.cluster import ClusterStatus, status_without_daemon
from sealbox.usecases.copy import CopyLag
from sealbox.usecases.copy import lags as copy_lags
from sealbox.usecases.drill import pinned_drill_signers, proven
from sealbox.usecases.recordings_backup import catalog_for
from sealbox.usecases.secrets_backup import list_backups

__all__ = ["AlertsStatus", "DestinationHealth", "KindStatus", "StatusDoc", "collect"]


class KindStatus(TypedDict):
    """One kind of backup (``secrets``, ``system``, ``recordings``) in ``status --json``."""

    kind: str
    destination: str
    schedule: str
    last_success: str | None  # ISO 8601 UTC
    next_run: str | None
    size: int | None
    state: str  # "ok", "overdue", "never run", or "unknown" (the destination cannot be read)
    last_success_from: NotRequired[str]  # "destination", or "history" (this machine's runs)
    unreachable_since: NotRequired[str | None]  # when "unknown": since the probes failed
    last_run: NotRequired[dict[str, Any] | None]  # the daemon's history row (JSON)
    error: NotRequired[str]  # the destination could not be read
    retained: NotRequired[int]  # secrets backups kept at the destination
    snapshots: NotRequired[int]  # system and recordings
    recordings_stored: NotRequired[int]
    manifest_head: NotRequired[str]
    copies: NotRequired[list[CopyLag]]  # [[copies]] of this kind: how far each is behind
    proven: NotRequired[dict[str, Any] | None]  # the newest drill receipt (system, recordings)
    fresh: NotRequired[dict[str, Any] | None]  # secrets with watch_seconds: the daemon's watch


class DestinationHealth(TypedDict):
    name: str
    health: str  # "ok", or why it is unreachable


class AlertsStatus(TypedDict):
    channels: list[str]
    conditions: dict[str, dict[str, Any]]  # condition key -> since, count, last_sent (state file)
    undelivered: int
    recent: list[dict[str, Any]]
    probes: dict[str, dict[str, Any]]


class StatusDoc(TypedDict):
    """``sealbox status --json`` (and the daemon's ``/api/status``)."""

    appliance: str
    time: str | None
    master_key: str | None
    last_drill: str | None
    kinds: list[KindStatus]
    destinations: list[DestinationHealth]
    sizing: list[dict[str, Any]]  # SizingReport.to_dict()
    alerts: AlertsStatus
    daemon: dict[str, Any] | None  # daemon.json, as the daemon wrote it
    cluster: ClusterStatus | None  # [cluster]: this node's role and who leads
    rotations: list[dict[str, Any]]
    warnings: list[str]


def _iso(when: datetime | None) -> str | None:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else None


def _kind(
    kind: str,
    schedule: str,
    destination: str,
    last: datetime | None,
    size: int | None,
    now: datetime,
    **extra: Any,
) -> KindStatus:
    overdue = last is None or now - last > 2 * interval(schedule, now)
    status = KindStatus(
        kind=kind,
        destination=destination,
        schedule=schedule,
        last_success=_iso(last),
        next_run=_iso(next_run(schedule, now)),
        size=size,
        state="never run" if last is None else ("overdue" if overdue else "ok"),
    )
    status.update(extra)  # type: ignore[typeddict-item]
    return status


def collect(config: Config, now: datetime | None = None) -> StatusDoc:
    now = now or datetime.now(UTC)
    state = config.appliance.state_dir
    warnings: list[str] = []
    kinds: list[KindStatus] = []
    keystore = Keystore(state)
    key = keystore.current()
    if key is None and not config.keys.recipients:
        warnings.append("master key not set: run `sealbox keys ceremony`")
    for name, dest in config.destinations.items():
        if dest.allow_on_appliance:
            warnings.append(
                f"destination {name!r} allows a location on the appliance (allow_on_appliance)"
            )
    health: dict[str, str] = {}
    if config.secrets is not None:
        name = config.secrets.destination
        try:
            backend = destination_backend(config, name)
            newest = list_backups(backend, config.appliance.name)
            last = size = None
            if newest:
                parsed = parse_backup_name(newest[0])
                last = (
                    datetime.strptime(parsed[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
                    if parsed
                    else None
                )
                size = backend.stat(newest[0]).size
            kinds.append(
                _kind(
                    "secrets",
                    config.secrets.schedule,
                    name,
                    last,
                    size,
                    now,
                    retained=len(newest),
                    fresh=_fresh(config),
                    copies=copy_lags(config, "secrets", _sizes(backend, newest), name)
                    if config.copies
                    else [],
                )
            )
            health.setdefault(name, "ok")
        except SealboxError as exc:
            health[name] = str(exc)
            kinds.append(
                _kind("secrets", config.secrets.schedule, name, None, None, now, error=str(exc))
            )
    for section in ("system", "recordings"):
        part = getattr(config, section)
        if part is None:
            continue
        name = part.destination
        try:
            repo, _ = open_product_repo(config, name, [], create=False)
            snaps = [s for s in repo.snapshots() if s.kind == section]
            last_snap = snaps[-1] if snaps else None
            found = proven(repo, section, pinned_drill_signers(config), snaps)
            extra: dict[str, Any] = {
                "snapshots": len(snaps),
                "proven": found.to_dict() if found else None,
            }
            if config.copies:
                extra["copies"] = copy_lags(config, section, {s.id: s.size for s in snaps}, name)
            if section == "recordings":
                catalog = catalog_for(config, repo)
                extra["recordings_stored"], extra["manifest_head"] = catalog.head()
                catalog.close()  # typed by KindStatus: recordings_stored, manifest_head
            kinds.append(
                _kind(
                    section,
                    part.schedule,
                    name,
                    last_snap.datetime if last_snap else None,
                    last_snap.size if last_snap else None,
                    now,
                    **extra,
                )
            )
            health.setdefault(name, "ok")
        except NotFoundError:
            kinds.append(_kind(section, part.schedule, name, None, None, now, proven=None))
        except SealboxError as exc:
            health[name] = str(exc)
            kinds.append(_kind(section, part.schedule, name, None, None, now, error=str(exc)))
    runs = _last_runs(state)
    successes = _last_successes(config)
    probes = last_probes(state)
    for item in kinds:
        last_run = runs.get(item["kind"])
        item["last_run"] = last_run
        if "error" in item:  # the destination did not answer: say so, never "never run"
            _unknown(item, successes.get(item["kind"]), probes.get(item["destination"]), now)
            warnings.append(
                f"{item['kind']}: unknown: destination {item['destination']!r} unreachable"
                f" since {item['unreachable_since'] or 'now'}; last run here succeeded at"
                f" {item['last_success'] or 'never'}"
            )
        else:
            item["last_success_from"] = "destination"
        if last_run and last_run["result"] == "failed":
            warnings.append(f"{item['kind']}: the last run failed: {last_run['error']}")
    for item in kinds:
        if item["state"] == "overdue":
            warnings.append(
                f"{item['kind']} backup is overdue (last success {item['last_success']})"
            )
    sizing = []
    for name in sorted({k["destination"] for k in kinds}):
        if health.get(name) != "ok":
            warnings.append(f"destination {name!r} unreachable: {health.get(name)}")
            continue
        report = measure(state, config.appliance.var_dir, name, destination_backend(config, name))
        sizing.append(report.to_dict())
        if report.warning():
            warnings.append(str(report.warning()))
    alerts = _alerts(config)
    if alerts["undelivered"]:
        warnings.append(
            f"{alerts['undelivered']} alert(s) not delivered yet (queued; see `sealbox notify test`)"
        )
    rotations = open_rotations(state)  # credentials a break-glass revealed, not yet rotated
    if rotations:
        warnings.append(
            f"{len(rotations)} credential(s) revealed by a break-glass wait for rotation"
            " (`sealbox breakglass receipt list`)"
        )
    daemon = _daemon(state)
    return StatusDoc(
        appliance=config.appliance.name,
        time=_iso(now),
        master_key=key.id if key else None,
        last_drill=key.last_drill if key else None,
        kinds=kinds,
        destinations=[DestinationHealth(name=n, health=h) for n, h in sorted(health.items())],
        sizing=sizing,
        alerts=alerts,
        daemon=daemon,
        cluster=_cluster(config, daemon),
        rotations=rotations,
        warnings=warnings,
    )


def _sizes(backend: Backend, names: list[str]) -> dict[str, int]:
    """The sizes of ``names`` from one listing (not a request per backup)."""
    wanted = set(names)
    return {i.name: i.size for i in backend.list("secrets-") if i.name in wanted}


def _last_runs(state_dir: Any) -> dict[str, dict[str, Any]]:
    """Each job's last run in the daemon's history (empty when no daemon ever ran here)."""

    history = History.maybe(state_dir)
    if history is None:
        return {}
    try:
        found: dict[str, dict[str, Any]] = {}
        for row in history.runs(limit=200):
            found.setdefault(row["kind"], row)
        return found
    finally:
        history.close()


def _last_successes(config: Config) -> dict[str, float]:
    """When each kind last succeeded on this machine: the daemon's history, or the alerts'
    record of every run (a backup typed by hand counts too), whichever is newer."""
    found: dict[str, float] = {}
    history = History.maybe(config.appliance.state_dir)
    if history is not None:
        try:
            for row in history.runs(result="success", limit=500):
                found.setdefault(row["kind"], float(row["ended"]))
        finally:
            history.close()
    for kind, entry in Notifier(config).read_state("runs.json").items():
        when = entry.get("last_success") if isinstance(entry, dict) else None
        if isinstance(when, str):
            stamp = datetime.strptime(when, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
            found[kind] = max(found.get(kind, 0.0), stamp)
    return found


def _unknown(
    item: KindStatus, succeeded: float | None, probe: dict[str, Any] | None, now: datetime
) -> None:
    """A kind whose destination cannot be read: what this machine knows instead."""
    item["state"] = "unknown"
    item["last_success"] = _iso(datetime.fromtimestamp(succeeded, UTC)) if succeeded else None
    item["last_success_from"] = "history"
    since = None
    for when, ok, *_ in reversed((probe or {}).get("history") or []):
        if ok:
            break
        since = when  # the first failure after the last success
    item["unreachable_since"] = since or _iso(now)


def _fresh(config: Config) -> dict[str, Any] | None:
    """The daemon's watch of the secrets sources (watch.json), when the config asks for one."""
    if config.secrets is None or not config.secrets.watch_seconds:
        return None
    doc = read_json(config.appliance.state_dir / WATCH_STATE)
    return doc or {"watching": False}


def _daemon(state_dir: Any) -> dict[str, Any] | None:
    """The running daemon's own report (``state_dir/daemon.json``), if its process lives."""
    import os

    doc: dict[str, Any] = read_json(state_dir / "daemon.json")
    try:
        os.kill(int(doc["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return doc


def _cluster(config: Config, daemon: dict[str, Any] | None) -> ClusterStatus | None:
    """The running daemon's view of the cluster; without a daemon, this node stands by."""
    if config.cluster is None:
        return None
    if daemon is not None and isinstance(daemon.get("cluster"), dict):
        found: ClusterStatus = daemon["cluster"]
        return found
    return status_without_daemon(config)


def _alerts(config: Config) -> AlertsStatus:
    """The alert conditions in progress, what waits in the outbox, the last deliveries."""

    notifier = Notifier(config)
    return AlertsStatus(
        channels=[c.id for c in notifier.channels],
        conditions=notifier.active(),
        undelivered=notifier.queued(),
        recent=recent_deliveries(config.appliance.state_dir, limit=20),
        probes={
            name: {k: v for k, v in probe.items() if k != "history"}
            for name, probe in last_probes(config.appliance.state_dir).items()
        },
    )
