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
    "SEVERITIES",
    "Event",
    "EventType",
    "event_markdown",
    "make_event",
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
            "Network path, credentials, the storage server's service and disk. Backups to this"
            " destination fail until it returns.",
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
        )


def make_event(name: str, appliance: str, severity: str = "", **fields: Any) -> Event:
    if name not in CATALOGUE:
        raise KeyError(f"unknown event {name!r}")
    clean = {k: v for k, v in fields.items() if v is not None}
    return Event(name, datetime.now(UTC), appliance, socket.gethostname(), clean, severity)


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
        "A condition (a destination down, a kind's backups failing, a kind overdue, a destination",
        "below its sizing target, the key not set) alerts once when it starts, then at most once",
        "per `[alerts] reminder_hours` while it lasts; `destination.recovered` and the first",
        "`backup.*.succeeded` after failures (sent as notice) end it.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(event_markdown(), end="")
