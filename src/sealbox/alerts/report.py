"""Where the product's commands meet the alerts: backups, restores, checks, probes, overdue runs.

Every helper here swallows a channel's failure (the notifier logs and queues it): an alert never
changes a command's outcome or exit code.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sealbox.alerts.notifier import Notifier
from sealbox.config.models import Config
from sealbox.errors import (
    DestinationError,
    KeyNotSetError,
    LockedError,
    ObjectExistsError,
    SealboxError,
)
from sealbox.keys.store import Keystore
from sealbox.repo.drills import DrillReceipt
from sealbox.repo.heal import HealReport
from sealbox.schedule import interval
from sealbox.state.files import read_json
from sealbox.util.redact import mask_url

__all__ = [
    "RunReport",
    "backup_run",
    "breakglass_used",
    "check_copies",
    "check_key",
    "check_overdue",
    "check_proven",
    "drill_result",
    "heal_events",
    "health_checks",
    "integrity_failed",
    "job_killed",
    "probe_outcome",
    "repair_outcome",
    "restore_run",
]

KINDS = ("secrets", "system", "recordings")
log = logging.getLogger("sealbox.alerts")


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class RunReport:
    """What a finished run tells its event (bytes, files, snapshot, sizing warning ...)."""

    fields: dict[str, Any] = field(default_factory=dict)
    sizing_warning: str | None = None


def _note_run(notifier: Notifier, kind: str, ok: bool) -> dict[str, Any]:
    def change(doc: dict[str, Any]) -> dict[str, Any]:
        entry = doc.setdefault(kind, {"first_seen": _now_iso(), "last_success": None})
        if ok:
            entry["last_success"] = _now_iso()
        return dict(entry)

    return notifier.update_state("runs.json", change)


@contextlib.contextmanager
def _never_fails(what: str) -> Iterator[None]:
    """Alert bookkeeping (state files, formatting) must not change a command's outcome either:
    whatever goes wrong in it is one warning line."""
    try:
        yield
    except Exception as exc:
        log.warning("alerts for %s not handled: %s", what, exc)


def _reason(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, SealboxError) else f"internal error: {exc!r}"


@contextlib.contextmanager
def backup_run(config: Config, kind: str, destination: str) -> Iterator[RunReport]:
    report = RunReport()
    started = datetime.now(UTC)
    try:
        yield report
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        with _never_fails(f"the failed {kind} backup"):
            _backup_failed(Notifier(config), kind, destination, exc)
        raise
    with _never_fails(f"the {kind} backup"):
        fields = {
            "destination": destination,
            "duration_s": round((datetime.now(UTC) - started).total_seconds(), 1),
            **report.fields,
        }
        _backup_succeeded(Notifier(config), kind, destination, fields, report.sizing_warning)


def _backup_failed(notifier: Notifier, kind: str, destination: str, exc: BaseException) -> None:
    entry = _note_run(notifier, kind, ok=False)
    notifier.condition(
        f"backup:{kind}",
        notifier.event(
            f"backup.{kind}.failed",
            destination=destination,
            reason=_reason(exc),
            last_success=entry["last_success"] or "never",
        ),
    )
    if isinstance(exc, KeyNotSetError):
        notifier.condition("key", notifier.event("key.not_set", reason=str(exc)))
    if _destination_down(exc):
        _unreachable(notifier, destination, str(exc), entry["last_success"])


def _destination_down(exc: BaseException) -> bool:
    """Whether a run failed because its destination did (a lost share, a full or read-only one,
    a server gone): not for another run's lock, which is the destination answering."""
    return isinstance(exc, DestinationError) and not isinstance(
        exc, (LockedError, ObjectExistsError)
    )


def _url(config: Config, destination: str) -> str:
    """The destination's URL as events show it: no query string, no password."""
    dest = config.destinations.get(destination)
    return mask_url(dest.url.split("?")[0]) if dest is not None else ""


def _unreachable(notifier: Notifier, destination: str, reason: str, last_ok: str | None) -> None:
    """The ``destination:NAME`` condition, which probes and runs share: the first failure
    alerts, the next ones only remind (every ``reminder_hours``), a success clears it."""
    notifier.condition(
        f"destination:{destination}",
        notifier.event(
            "destination.unreachable",
            destination=destination,
            url=_url(notifier.config, destination),
            reason=reason,
            last_success=last_ok or "never",
        ),
    )


def _backup_succeeded(
    notifier: Notifier,
    kind: str,
    destination: str,
    fields: dict[str, Any],
    sizing_warning: str | None,
) -> None:
    _note_run(notifier, kind, ok=True)
    # The first success after failures ends the condition and is worth a notice (emails it).
    recovered = notifier.clear(
        f"backup:{kind}", notifier.event(f"backup.{kind}.succeeded", "notice", **fields)
    )
    if recovered is None:
        notifier.send(notifier.event(f"backup.{kind}.succeeded", **fields))
    notifier.clear(f"overdue:{kind}", None)
    notifier.clear("key", None)
    notifier.clear(
        f"destination:{destination}",
        notifier.event(
            "destination.recovered",
            destination=destination,
            url=_url(notifier.config, destination),
        ),
    )
    if sizing_warning:
        notifier.condition(
            f"sizing:{destination}",
            notifier.event(
                "destination.below_sizing_target", destination=destination, reason=sizing_warning
            ),
        )
    else:
        notifier.clear(f"sizing:{destination}", None)


@contextlib.contextmanager
def restore_run(
    config: Config,
    kind: str,
    destination: str,
    snapshot: str | None,
    target: str | None,
    enabled: bool = True,
) -> Iterator[RunReport]:
    report = RunReport()
    if not enabled:  # a dry run: nothing is restored, nothing to tell
        yield report
        return
    common: dict[str, Any] = {
        "kind": kind,
        "destination": destination,
        "snapshot": snapshot,
        "target": target,
    }

    def send(name: str, **fields: Any) -> None:
        with _never_fails(f"the {kind} restore"):
            notifier = Notifier(config)
            notifier.send(notifier.event(name, **common, **fields))

    send("restore.started")
    started = datetime.now(UTC)
    try:
        yield report
    except KeyboardInterrupt:
        send("restore.failed", reason="interrupted")
        raise
    except BaseException as exc:
        send("restore.failed", reason=_reason(exc))
        raise
    duration = round((datetime.now(UTC) - started).total_seconds(), 1)
    send("restore.succeeded", duration_s=duration, **report.fields)


def job_killed(config: Config, kind: str, destination: str, reason: str) -> None:
    """A backup process that died without a word (killed by a signal): its failure alert."""
    with _never_fails(f"the killed {kind} backup"):
        _backup_failed(Notifier(config), kind, destination, SealboxError(reason))


def cluster_notice(config: Config, notices: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
    """The daemon's cluster notices: ``cluster.leader_changed`` (sent once, by the node that
    takes the lead), ``cluster.no_leader`` (a condition: this node cannot tell who leads) and
    ``clear`` (it can again)."""
    with _never_fails("the cluster notice"):
        notifier = Notifier(config)
        for name, fields in notices:
            if name == "clear":
                notifier.clear("cluster:no_leader", None)
            elif name == "cluster.no_leader":
                notifier.condition("cluster:no_leader", notifier.event(name, **fields))
            else:
                notifier.send(notifier.event(name, **fields))


def integrity_failed(config: Config, destination: str, reason: str, tampering: bool) -> None:
    name = "recordings.tampering_detected" if tampering else "check.integrity_failed"
    with _never_fails(name):
        notifier = Notifier(config)
        notifier.send(notifier.event(name, destination=destination, reason=reason))


def heal_events(
    destination: str, report: HealReport, repaired: bool, duration_s: float | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """The events a scrub or repair makes (name, fields): repair.succeeded and repair.lost after
    a repair, scrub.damage_found or scrub.clean after a plain scrub."""

    def names(verdicts: list[Any]) -> str:
        listed = [v.name for v in verdicts]
        return ", ".join(listed[:10]) + (f" (+{len(listed) - 10} more)" if len(listed) > 10 else "")

    lost = report.of("lost")
    events: list[tuple[str, dict[str, Any]]] = []
    if repaired:
        fixed, rewritten = report.of("repaired"), report.parity("rewritten")
        if fixed or rewritten:
            events.append(
                (
                    "repair.succeeded",
                    {
                        "destination": destination,
                        "repaired": len(fixed),
                        "parity_rewritten": len(rewritten),
                        "objects": names(fixed + [v for v in rewritten if v not in fixed]),
                    },
                )
            )
    damaged = report.of("repairable", "lost") + [
        v for v in report.parity("damaged") if v.state == "intact"
    ]
    if lost:
        reason = "; ".join(f"{v.name}: {v.reason}" for v in lost[:3])
        fields = {"destination": destination, "lost": len(lost), "objects": names(lost)}
        events.append(("repair.lost", fields | {"reason": reason}))
    elif not repaired and damaged:
        events.append(
            (
                "scrub.damage_found",
                {
                    "destination": destination,
                    "damaged": len(damaged),
                    "repairable": len(report.of("repairable")),
                    "lost": len(lost),
                    "parity_damaged": len(report.parity("damaged")),
                    "objects": names(damaged),
                },
            )
        )
    if not events and not damaged:
        fields = {"destination": destination, "checked": report.checked}
        events.append(("scrub.clean", fields | {"duration_s": duration_s}))
    return events


def repair_outcome(config: Config, destination: str, report: HealReport, repaired: bool) -> None:
    """A repair's events (repair.succeeded, repair.lost); a clean repair alerts nothing."""
    with _never_fails(f"the repair of {destination}"):
        notifier = Notifier(config)
        for name, fields in heal_events(destination, report, repaired):
            if name != "scrub.clean":
                notifier.send(notifier.event(name, **fields))


def breakglass_used(config: Config, **fields: Any) -> bool:
    """A receipt was imported: the break-glass event (True when it was handed to the channels)."""
    with _never_fails("the break-glass receipt"):
        notifier = Notifier(config)
        notifier.send(notifier.event("breakglass.used", **fields))
        return True
    return False


def probe_outcome(
    config: Config, destination: str, url: str, ok: bool, error: str | None, last_ok: str | None
) -> None:
    """Turn one probe result into at most one alert: on the change of state, and reminders."""
    with _never_fails(f"the probe of {destination}"):
        _probe_outcome(Notifier(config), destination, url, ok, error, last_ok)


def _probe_outcome(
    notifier: Notifier, destination: str, url: str, ok: bool, error: str | None, last_ok: str | None
) -> None:
    key = f"destination:{destination}"
    if ok:
        notifier.clear(
            key, notifier.event("destination.recovered", destination=destination, url=url)
        )
    else:
        notifier.condition(
            key,
            notifier.event(
                "destination.unreachable",
                destination=destination,
                url=url,
                reason=error or "unknown",
                last_success=last_ok or "never",
            ),
        )


def check_overdue(config: Config, now: datetime | None = None) -> list[str]:
    """Kinds with no success within twice their schedule's interval (as this appliance saw its
    own runs); raises the ``overdue:KIND`` condition for each, so it alerts once then reminds."""

    now = now or datetime.now(UTC)
    notifier = Notifier(config)
    runs = notifier.read_state("runs.json")
    overdue: list[str] = []
    for kind in KINDS:
        section: Any = getattr(config, kind)
        if section is None:
            continue
        entry = runs.get(kind)
        if entry is None:
            _note_run(notifier, kind, ok=False)  # start the clock at the first look
            continue
        last = entry["last_success"] or entry["first_seen"]
        since = datetime.strptime(last, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        if now - since > 2 * interval(section.schedule, now):
            overdue.append(kind)
            notifier.condition(
                f"overdue:{kind}",
                notifier.event(
                    f"backup.{kind}.overdue",
                    destination=section.destination,
                    last_success=entry["last_success"] or "never",
                    schedule=section.schedule,
                ),
            )
    return overdue


def check_key(config: Config) -> bool:
    """The ``key`` condition: no master key in the keystore and no recipients configured."""

    notifier = Notifier(config)
    if Keystore(config.appliance.state_dir).current() is None and not config.keys.recipients:
        notifier.condition(
            "key",
            notifier.event(
                "key.not_set", reason="no master key: run `sealbox keys ceremony` with custodians"
            ),
        )
        return False
    notifier.clear("key", None)
    return True


def check_copies(config: Config, now: datetime | None = None) -> list[str]:
    """Copies that have not completed within their ``alert_after_hours`` (the clock starts at
    the first look); raises ``copy:FROM>TO`` for each, and clears it once one completes."""
    now = now or datetime.now(UTC)
    notifier = Notifier(config)
    record = read_json(config.appliance.state_dir / "copies.json")  # usecases.copy writes it
    first_look = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    seen = notifier.update_state(
        "copies-seen.json",
        lambda doc: {
            c: doc.setdefault(c, first_look) for c in (f"{x.from_}>{x.to}" for x in config.copies)
        },
    )
    behind: list[str] = []
    for copy in config.copies:
        key = f"{copy.from_}>{copy.to}"
        last = record.get(key)
        if not isinstance(last, str):
            since_text, last_text = str(seen[key]), "never"
        else:
            since_text = last_text = last
        since = datetime.strptime(since_text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        fields = {"source": copy.from_, "target": copy.to, "last_copy": last_text}
        if now - since > timedelta(hours=copy.alert_after_hours):
            behind.append(key)
            notifier.condition(
                f"copy:{key}",
                notifier.event("copy.behind", alert_after_hours=copy.alert_after_hours, **fields),
            )
        else:
            notifier.clear(f"copy:{key}", notifier.event("copy.caught_up", **fields))
    return behind


def drill_result(config: Config, destination: str, receipt: DrillReceipt) -> None:
    """A drill ended (on the recovery host, with its own channels): passed or failed."""
    checks = ", ".join(f"{c.name}: {c.result}" for c in receipt.checks) or "none"
    failed = [c for c in receipt.checks if c.result != "passed"]
    # The checks' names only: their details can name paths inside the backup.
    reason = receipt.error or "; ".join(f"{c.name} failed" for c in failed)[:1000]
    fields: dict[str, Any] = {
        "kind": receipt.kind,
        "destination": destination,
        "snapshot": receipt.snapshot[:12],
        "host": receipt.host,
        "checks": checks,
        "duration_s": receipt.seconds,
    }
    with _never_fails("the drill"):
        notifier = Notifier(config)
        if receipt.result == "passed":
            notifier.send(notifier.event("drill.passed", **fields))
        else:
            notifier.send(notifier.event("drill.failed", reason=reason or "failed", **fields))


def check_proven(
    config: Config,
    kind: str,
    destination: str,
    last_passed: str | None,
    now: datetime | None = None,
) -> bool:
    """The ``proven:KIND`` condition (``[drills] alert_after_days``): no drill of ``kind``
    passed for that long (or ever: the clock starts at the first look). True when proven."""
    if config.drills is None:
        return True
    now = now or datetime.now(UTC)
    notifier = Notifier(config)
    key = f"proven:{kind}"
    first_look = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    seen = notifier.update_state("proven-seen.json", lambda doc: doc.setdefault(kind, first_look))
    since = datetime.fromisoformat((last_passed or str(seen)).replace("Z", "+00:00"))
    if now - since > timedelta(days=config.drills.alert_after_days):
        notifier.condition(
            key,
            notifier.event(
                "drill.not_proven",
                kind=kind,
                destination=destination,
                last_proven=last_passed or "never",
                alert_after_days=config.drills.alert_after_days,
            ),
        )
        return False
    notifier.clear(key, None)
    return True


def health_checks(config: Config) -> None:
    """What a full probe run adds (the daemon's probe schedule): overdue kinds, copies behind,
    a missing master key, and another try for alerts a channel refused earlier."""
    with _never_fails("the health checks"):
        check_overdue(config)
        check_copies(config)
        check_key(config)
        Notifier(config).flush()
