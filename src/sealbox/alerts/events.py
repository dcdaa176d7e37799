"""The event catalogue: every event Sealbox can send to an alert channel, with a stable id.

Pure data and formatting, no I/O. ``docs/reference/events.md`` is generated from
:data:`CATALOGUE` (``python -m sealbox.alerts.events``); a test keeps page and code in step.
Ids never change meaning once released: SIEM rules key on them (CEF signature id, LEEF event id).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "CATALOGUE",
    "ECS_VERSION",
    "OCSF_CLASS_NAMES",
    "OCSF_SEVERITY",
    "OCSF_VERSION",
    "SEVERITIES",
    "Event",
    "EventType",
    "ecs_category",
    "event_markdown",
    "make_event",
    "ocsf_class",
    "severity_rank",
]

# RFC 5424 severities we use (lower is more severe), and their CEF (0-10) and LEEF (1-10) values.
SEVERITIES: dict[str, tuple[int, int]] = {
    "critical": (2, 10),
    "error": (3, 8),
    "warning": (4, 6),
    "notice": (5, 4),
    "info": (6, 2),
}


def severity_rank(name: str) -> int:
    """RFC 5424 numeric severity (2 = critical ... 6 = info)."""
    return SEVERITIES[name][0]


@dataclass(frozen=True)
class EventType:
    id: int
    name: str
    severity: str
    title: str  # a sentence with {field} placeholders
    fields: tuple[str, ...]
    check: str  # what the operator should look at


_KINDS = ("secrets", "system", "recordings")


def _backup_types() -> list[EventType]:
    found: list[EventType] = []
    for offset, kind in enumerate(_KINDS):
        base = 200 + 10 * offset
        found += [
            EventType(
                base,
                f"backup.{kind}.succeeded",
                "info",
                f"{kind} backup succeeded at {{destination}}",
                ("destination", "bytes", "files", "duration_s", "snapshot"),
                "Nothing to do.",
            ),
            EventType(
                base + 1,
                f"backup.{kind}.failed",
                "error",
                f"{kind} backup failed at {{destination}}: {{reason}}",
                ("destination", "reason", "last_success", "consecutive_failures"),
                "Read the reason; run the backup by hand with --debug; check the destination"
                " with `sealbox probe`.",
            ),
            EventType(
                base + 2,
                f"backup.{kind}.overdue",
                "warning",
                f"{kind} backup overdue: no success since {{last_success}}",
                ("destination", "last_success", "schedule"),
                "No success within twice the schedule's interval: is the daemon running, and do"
                " its runs fail? See `sealbox status`.",
            ),
        ]
    return found


CATALOGUE: dict[str, EventType] = {
    t.name: t
    for t in [
        EventType(
            100,
            "destination.unreachable",
            "error",
            "destination {destination} unreachable: {reason}",
            ("destination", "url", "reason", "since", "last_success", "consecutive_failures"),
            "Network path, credentials, the storage server's service and disk (a mounted"
            " share: is it mounted, full, read-only?). Raised by a failed probe or a backup that"
            " failed at the destination, once; backups to it fail until it returns.",
        ),
        EventType(
            101,
            "destination.recovered",
            "notice",
            "destination {destination} reachable again",
            ("destination", "url", "since", "down_seconds", "consecutive_failures"),
            "Nothing to do; overdue backups run at their next schedule.",
        ),
        EventType(
            102,
            "destination.below_sizing_target",
            "warning",
            "destination {destination} below the 150% sizing target: {reason}",
            ("destination", "reason"),
            "Grow the destination (or its quota) to at least 150% of the appliance's /var.",
        ),
        *_backup_types(),
        EventType(
            700,
            "copy.behind",
            "warning",
            "copy from {source} to {target} has not completed since {last_copy}",
            ("source", "target", "last_copy", "alert_after_hours"),
            "Run `sealbox copy --to TARGET` and read its error; check both destinations with"
            " `sealbox probe`. Until it completes, the second copy lacks the newest backups.",
        ),
        EventType(
            701,
            "copy.caught_up",
            "notice",
            "copy from {source} to {target} completed again",
            ("source", "target", "last_copy"),
            "Nothing to do.",
        ),
        EventType(
            710,
            "drill.passed",
            "info",
            "{kind} restore drill passed: snapshot {snapshot} restores ({checks})",
            ("kind", "destination", "snapshot", "host", "checks", "duration_s"),
            "Nothing to do.",
        ),
        EventType(
            711,
            "drill.failed",
            "error",
            "{kind} restore drill failed on {host}: {reason}",
            ("kind", "destination", "snapshot", "host", "checks", "reason", "duration_s"),
            "The newest backup did not restore as it should: read the drill receipt"
            " (`sealbox status --json`, `proven`), rerun `sealbox drill` with --keep --debug on"
            " the recovery host, and fix the cause (a dump that does not load, a damaged file)"
            " before it is needed.",
        ),
        EventType(
            712,
            "drill.not_proven",
            "warning",
            "{kind} backups not proven restorable since {last_proven}",
            ("kind", "destination", "last_proven", "alert_after_days"),
            "No restore drill passed within [drills] alert_after_days: run `sealbox drill"
            " KIND` on the recovery host (or check its daemon's drill schedule).",
        ),
        EventType(
            300,
            "key.not_set",
            "warning",
            "master key not set: backups cannot be sealed",
            ("reason",),
            "Run `sealbox keys ceremony` with the custodians, or set [keys] recipients.",
        ),
        EventType(
            400,
            "check.integrity_failed",
            "critical",
            "integrity check failed at {destination}: {reason}",
            ("destination", "reason"),
            "Run `sealbox check` by hand; do not prune; compare with another copy.",
        ),
        EventType(
            410,
            "scrub.clean",
            "info",
            "scrub of {destination}: {checked} objects verified against their names and parity,"
            " nothing damaged",
            ("destination", "checked", "duration_s"),
            "Nothing to do.",
        ),
        EventType(
            411,
            "scrub.damage_found",
            "warning",
            "{destination}: {damaged} damaged object(s), {repairable} repairable from parity,"
            " {lost} lost",
            ("destination", "damaged", "repairable", "lost", "parity_damaged", "objects"),
            "Run `sealbox check --repair` (appliance) or `sealbox agent scrub` (storage"
            " host); look at the disk's health (SMART, the filesystem's own scrub).",
        ),
        EventType(
            412,
            "repair.succeeded",
            "notice",
            "{destination}: {repaired} object(s) repaired from parity, {parity_rewritten} parity"
            " object(s) rewritten",
            ("destination", "repaired", "parity_rewritten", "objects"),
            "The objects were rebuilt and verified against their names; look at the disk's"
            " health, since rot that parity healed may be the first sign of a failing disk.",
        ),
        EventType(
            413,
            "repair.lost",
            "critical",
            "{destination}: {lost} object(s) damaged beyond what parity repairs: {objects}",
            ("destination", "lost", "objects", "reason"),
            "Run `sealbox check` to see which snapshots and files need them; restore them from"
            " another copy (`[[copies]]`) or take a new backup; do not prune until then.",
        ),
        EventType(
            401,
            "recordings.tampering_detected",
            "critical",
            "session recordings tampering detected at {destination}: {reason}",
            ("destination", "reason"),
            "Treat as a security incident: preserve the destination, run"
            " `sealbox recordings verify`, and involve the audit owner.",
        ),
        EventType(
            500,
            "restore.started",
            "notice",
            "{kind} restore started from {destination}",
            ("kind", "destination", "snapshot", "target"),
            "Expected when an operator restores; otherwise investigate who runs it.",
        ),
        EventType(
            501,
            "restore.succeeded",
            "notice",
            "{kind} restore succeeded from {destination}",
            ("kind", "destination", "snapshot", "target", "bytes", "duration_s"),
            "Nothing to do.",
        ),
        EventType(
            502,
            "restore.failed",
            "error",
            "{kind} restore failed from {destination}: {reason}",
            ("kind", "destination", "snapshot", "target", "reason"),
            "Read the reason; rerun with --debug.",
        ),
        EventType(
            600,
            "breakglass.used",
            "warning",
            "break-glass backup {backup} opened: {items} item(s) revealed or exported, to rotate",
            ("backup", "opened", "opener", "machine", "shares", "items", "item_ids", "receipt"),
            "Rotate every credential `sealbox breakglass receipt list` names (the dashboard shows"
            " them too), then mark each `sealbox breakglass receipt done ITEM`. If no emergency"
            " was declared, treat it as a security incident.",
        ),
        EventType(
            800,
            "cluster.leader_changed",
            "notice",
            "cluster leader is now {node} (was {previous})",
            ("node", "previous", "counter", "mode"),
            "Expected after a failover or a restart of the leader; if it repeats, look at the"
            " nodes' links to the lease destination (a lease not renewed in time changes hands).",
        ),
        EventType(
            801,
            "cluster.no_leader",
            "error",
            "cluster node {node} cannot tell who leads: {reason}",
            ("node", "reason"),
            "The lease destination (or the database, or the role command) does not answer this"
            " node: it runs no scheduled backup until it can tell. Check the other nodes too.",
        ),
        EventType(
            900,
            "notify.test",
            "notice",
            "test event from `sealbox notify test`",
            (),
            "Nothing: this proves the channel delivers.",
        ),
    ]
}


@dataclass
class Event:
    """One occurrence, ready for every channel."""

    name: str
    time: datetime
    appliance: str
    host: str
    fields: dict[str, Any] = field(default_factory=dict)
    severity: str = ""
    sequence: int | None = None  # this appliance's event counter (RFC 5424 meta sequenceId)

    def __post_init__(self) -> None:
        self.severity = self.severity or self.type.severity

    @property
    def type(self) -> EventType:
        return CATALOGUE[self.name]

    @property
    def outcome(self) -> str:
        return "success" if self.severity in ("notice", "info") else "failure"

    @property
    def message(self) -> str:
        values = {f: self.fields.get(f, "-") for f in self.type.fields}
        values.setdefault("kind", self.fields.get("kind", "-"))
        values.setdefault("destination", self.fields.get("destination", "-"))
        return self.type.title.format(**values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "time": self.time.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "appliance": self.appliance,
            "host": self.host,
            "severity": self.severity,
            "fields": self.fields,
            "sequence": self.sequence,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        return cls(
            name=data["name"],
            time=datetime.strptime(data["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC),
            appliance=data["appliance"],
            host=data["host"],
            fields=dict(data.get("fields", {})),
            severity=data.get("severity", ""),
            sequence=data.get("sequence"),
        )


def make_event(name: str, appliance: str, severity: str = "", **fields: Any) -> Event:
    if name not in CATALOGUE:
        raise KeyError(f"unknown event {name!r}")
    clean = {k: v for k, v in fields.items() if v is not None}
    return Event(name, datetime.now(UTC), appliance, socket.gethostname(), clean, severity)


ECS_VERSION = "8.11.0"
OCSF_VERSION = "1.3.0"

# Per event family (the name's first part): ECS event.category, and event.type on success.
_ECS_FAMILY: dict[str, tuple[str, str]] = {
    "destination": ("host", "connection"),
    "backup": ("file", "creation"),
    "copy": ("file", "creation"),
    "restore": ("file", "access"),
    "drill": ("file", "access"),
    "key": ("configuration", "info"),
    "check": ("intrusion_detection", "info"),
    "recordings": ("intrusion_detection", "info"),
    "breakglass": ("iam", "access"),
    "notify": ("configuration", "info"),
    "cluster": ("host", "change"),
    "scrub": ("file", "info"),
    "repair": ("file", "change"),
}

# OCSF: class_uid and activity_id (Application category 6). Datastore Activity (6005) for what
# reads or writes the backups, Application Error (6008, General Error) for conditions that need
# someone, Application Lifecycle (6002, Other) for the rest.
DATASTORE, LIFECYCLE, APP_ERROR = 6005, 6002, 6008
_OCSF_EVENT: dict[str, tuple[int, int]] = {
    "destination.unreachable": (APP_ERROR, 1),
    "destination.recovered": (LIFECYCLE, 99),
    "destination.below_sizing_target": (APP_ERROR, 1),
    "key.not_set": (APP_ERROR, 1),
    "check.integrity_failed": (DATASTORE, 1),  # Read
    "recordings.tampering_detected": (DATASTORE, 1),
    "restore.started": (DATASTORE, 1),
    "restore.succeeded": (DATASTORE, 1),
    "restore.failed": (DATASTORE, 1),
    "breakglass.used": (DATASTORE, 10),  # Decrypt
    "copy.behind": (APP_ERROR, 1),
    "copy.caught_up": (LIFECYCLE, 99),
    "drill.passed": (DATASTORE, 1),
    "drill.failed": (DATASTORE, 1),
    "drill.not_proven": (APP_ERROR, 1),
    "notify.test": (LIFECYCLE, 99),
}
OCSF_CLASS_NAMES = {
    DATASTORE: "Datastore Activity",
    LIFECYCLE: "Application Lifecycle",
    APP_ERROR: "Application Error",
}
# RFC 5424 severity -> OCSF severity_id (1 Informational ... 5 Critical).
OCSF_SEVERITY = {"info": 1, "notice": 1, "warning": 3, "error": 4, "critical": 5}


def ocsf_class(name: str, severity: str) -> tuple[int, int]:
    """(class_uid, activity_id) of an event (docs/reference/events.md lists them)."""
    if name in _OCSF_EVENT:
        return _OCSF_EVENT[name]
    if name.startswith("backup."):
        return (APP_ERROR, 1) if name.endswith(".overdue") else (DATASTORE, 5)  # Write
    return (APP_ERROR, 1) if severity_rank(severity) <= 4 else (LIFECYCLE, 99)


def ecs_category(name: str) -> tuple[str, str]:
    return _ECS_FAMILY.get(name.split(".", 1)[0], ("host", "info"))


def event_markdown() -> str:
    """Render ``docs/reference/events.md``."""
    lines = [
        "# Events",
        "",
        "Generated from `src/sealbox/alerts/events.py` by `python -m sealbox.alerts.events`; a test",
        "keeps this page and the code in step. The id is the CEF signature id and the LEEF event",
        "id; the name is the RFC 5424 MSGID. Ids keep their meaning across releases.",
        "",
        "Every event also carries: time, appliance name, appliance host name, severity, outcome",
        "(`success` for info and notice, `failure` otherwise). Severity is the RFC 5424 one; CEF",
        "and LEEF get the mapped value in brackets.",
        "",
        "| id | name | severity | fields | what to check |",
        "|---:|---|---|---|---|",
    ]
    for t in sorted(CATALOGUE.values(), key=lambda t: t.id):
        rfc, cef = SEVERITIES[t.severity]
        fields = ", ".join(f"`{f}`" for f in t.fields) or "-"
        lines.append(
            f"| {t.id} | `{t.name}` | {t.severity} ({rfc}; CEF {cef}) | {fields} | {t.check} |"
        )
    lines += [
        "",
        "## ECS and OCSF",
        "",
        'With `format = "ecs"` or `"ocsf"` (syslog, or an `[alerts] http` channel: Splunk HEC,',
        f"Elasticsearch bulk) each event is one JSON document. ECS {ECS_VERSION}: `event.kind`",
        "(`alert` on failure, else `event`), `event.category`, `event.type` (`error` on failure),",
        "`event.outcome`, `event.code` (the id), `event.action` (the name), `event.severity` (RFC 5424),",
        "`event.sequence`, `host.name`, `observer.name` (the appliance), `service.*`, the fields under",
        f"`sealbox.*`. OCSF {OCSF_VERSION} (category 6, Application Activity): `class_uid`,",
        "`activity_id`, `type_uid` = class_uid x 100 + activity_id, `severity_id` (info and notice 1,",
        "warning 3, error 4, critical 5), `status_id` (1 success, 2 failure), `metadata.sequence`,",
        "`metadata.event_code`, `device.hostname`, the fields under `unmapped`. Syslog messages carry",
        '`[meta sequenceId="N"]` (RFC 5424 section 7.3.1): N counts the appliance\'s events, so a gap',
        "is an event a SIEM never received.",
        "",
        "| id | name | ECS event.category / event.type | OCSF class (activity) |",
        "|---:|---|---|---|",
    ]
    for t in sorted(CATALOGUE.values(), key=lambda t: t.id):
        category, kind = ecs_category(t.name)
        failure = SEVERITIES[t.severity][0] <= 4
        class_uid, activity = ocsf_class(t.name, t.severity)
        lines.append(
            f"| {t.id} | `{t.name}` | {category} / {'error' if failure else kind} |"
            f" {OCSF_CLASS_NAMES[class_uid]} {class_uid} ({activity}) |"
        )
    lines += [
        "",
        "A condition (a destination down, a kind's backups failing, a kind overdue, a destination",
        "below its sizing target, the key not set) alerts once when it starts, then at most once",
        "per `[alerts] reminder_hours` while it lasts; `destination.recovered` and the first",
        "`backup.*.succeeded` after failures (sent as notice) end it.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(event_markdown(), end="")
