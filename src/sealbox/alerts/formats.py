"""Wire formats for alerts: RFC 5424 syslog lines with CEF, LEEF 2.0, ECS or OCSF JSON or plain
payloads, the RFC 6587/5425 octet-counting frame, and the email text. Pure functions, no I/O.

CEF (ArcSight Common Event Format, revision 25): ``CEF:0|Vendor|Product|Version|SignatureID|
Name|Severity|Extension``; header fields escape ``\\`` and ``|``, extension values escape ``\\``,
``=`` and line breaks. LEEF 2.0 (QRadar): ``LEEF:2.0|Vendor|Product|Version|EventID|x09|`` then
tab-separated ``key=value`` attributes; tabs and line breaks inside values become spaces.
"""

from __future__ import annotations

import html
import re
from typing import Any

import orjson

from sealbox import __version__
from sealbox.alerts.events import (
    ECS_VERSION,
    OCSF_CLASS_NAMES,
    OCSF_SEVERITY,
    OCSF_VERSION,
    SEVERITIES,
    Event,
    ecs_category,
    ocsf_class,
)

__all__ = [
    "FACILITIES",
    "cef",
    "ecs",
    "email_html",
    "email_subject",
    "email_text",
    "frame",
    "json_payload",
    "leef",
    "ocsf",
    "plain",
    "rfc5424",
]

FACILITIES = {"kern": 0, "user": 1, "daemon": 3, "auth": 4, "authpriv": 10, "local0": 16}
FACILITIES.update({f"local{i}": 16 + i for i in range(8)})

VENDOR, PRODUCT = "Sealbox", "Sealbox"

# Our field names -> CEF extension keys (standard ones where CEF has them, labelled custom
# strings/numbers otherwise).
_CEF_STANDARD = {"reason": "reason", "destination": "destinationServiceName", "kind": "cat"}
_CEF_CUSTOM_STRINGS = ("url", "last_success", "since", "snapshot", "target", "schedule")
_CEF_CUSTOM_NUMBERS = ("consecutive_failures", "bytes", "down_seconds")


def _header_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("|", "\\|")


def _ext_escape(value: Any) -> str:
    text = str(value)
    text = text.replace("\\", "\\\\").replace("=", "\\=")
    return text.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\r")


def _time_ms(event: Event) -> int:
    return int(event.time.timestamp() * 1000)


def cef(event: Event) -> str:
    t = event.type
    ext: list[tuple[str, Any]] = [
        ("rt", _time_ms(event)),
        ("dvchost", event.host),
        ("deviceExternalId", event.appliance),
        ("outcome", event.outcome),
        ("msg", event.message),
    ]
    for name, key in _CEF_STANDARD.items():
        if name in event.fields:
            ext.append((key, event.fields[name]))
    for i, name in enumerate(_CEF_CUSTOM_STRINGS, start=1):
        if name in event.fields:
            ext += [(f"cs{i}Label", name), (f"cs{i}", event.fields[name])]
    for i, name in enumerate(_CEF_CUSTOM_NUMBERS, start=1):
        if name in event.fields:
            ext += [(f"cn{i}Label", name), (f"cn{i}", event.fields[name])]
    header = "|".join(
        _header_escape(x)
        for x in (
            "CEF:0",
            VENDOR,
            PRODUCT,
            __version__,
            str(t.id),
            t.name,
            str(SEVERITIES[event.severity][1]),
        )
    )
    return header + "|" + " ".join(f"{k}={_ext_escape(v)}" for k, v in ext)


_LEEF_CLEAN = re.compile(r"[\t\r\n]")


def leef(event: Event) -> str:
    t = event.type
    attrs: list[tuple[str, Any]] = [
        ("devTime", _time_ms(event)),  # epoch milliseconds: LEEF needs no devTimeFormat then
        ("sev", SEVERITIES[event.severity][1]),
        ("cat", t.name.split(".")[0]),
        ("identHostName", event.host),
        ("appliance", event.appliance),
        ("outcome", event.outcome),
        ("msg", event.message),
    ]
    attrs += sorted(event.fields.items())
    header = "|".join(("LEEF:2.0", VENDOR, PRODUCT, __version__.replace("|", " "), t.name, "x09"))
    body = "\t".join(f"{k}={_LEEF_CLEAN.sub(' ', str(v))}" for k, v in attrs)
    return f"{header}|{body}"


def plain(event: Event) -> str:
    details = " ".join(f"{k}={v!s}" for k, v in sorted(event.fields.items()))
    text = f"{event.severity.upper()} {event.message}" + (f" ({details})" if details else "")
    return _LEEF_CLEAN.sub(" ", text)


_PRINTABLE = re.compile(r"[^\x21-\x7e]")


def _token(value: str, limit: int) -> str:
    """An RFC 5424 header token: printable US-ASCII without spaces, at most ``limit`` chars."""
    return (_PRINTABLE.sub("_", value) or "-")[:limit]


def rfc5424(event: Event, payload: str, facility: str = "auth", procid: int | None = None) -> str:
    """``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG``: SD is ``[meta
    sequenceId="N"]`` (RFC 5424 7.3.1: the appliance's event counter, so a SIEM sees gaps), or
    ``-``; no BOM: CEF and LEEF collectors expect the payload right after the header."""
    pri = FACILITIES[facility] * 8 + SEVERITIES[event.severity][0]
    stamp = event.time.strftime("%Y-%m-%dT%H:%M:%S.") + f"{event.time.microsecond // 1000:03d}Z"
    sd = f'[meta sequenceId="{event.sequence}"]' if event.sequence else "-"
    return (
        f"<{pri}>1 {stamp} {_token(event.host, 255)} sealbox "
        f"{procid if procid is not None else '-'} {_token(event.type.name, 32)} {sd} {payload}"
    )


# --- JSON for SIEMs: Elastic Common Schema and OCSF -------------------------------------------


def _iso_ms(event: Event) -> str:
    return event.time.strftime("%Y-%m-%dT%H:%M:%S.") + f"{event.time.microsecond // 1000:03d}Z"


def ecs(event: Event) -> dict[str, Any]:
    """The event as an Elastic Common Schema document (our own fields under ``sealbox``)."""
    category, kind_type = ecs_category(event.name)
    failure = event.outcome == "failure"
    return {
        "@timestamp": _iso_ms(event),
        "message": event.message,
        "ecs": {"version": ECS_VERSION},
        "event": {
            "kind": "alert" if failure else "event",
            "category": [category],
            "type": ["error"] if failure else [kind_type],
            "outcome": event.outcome,
            "code": str(event.type.id),
            "action": event.name,
            "severity": SEVERITIES[event.severity][0],
            "sequence": event.sequence,
            "module": "sealbox",
            "dataset": "sealbox.events",
            "provider": "sealbox",
        },
        "log": {"level": event.severity},
        "host": {"name": event.host},
        "observer": {"name": event.appliance, "product": PRODUCT, "vendor": VENDOR},
        "service": {"name": "sealbox", "version": __version__},
        "labels": {"appliance": event.appliance},
        "sealbox": {"event": event.name, **event.fields},
    }


def ocsf(event: Event) -> dict[str, Any]:
    """The event as an OCSF event of its class (our own fields under ``unmapped``)."""
    class_uid, activity_id = ocsf_class(event.name, event.severity)
    failure = event.outcome == "failure"
    return {
        "class_uid": class_uid,
        "class_name": OCSF_CLASS_NAMES[class_uid],
        "category_uid": 6,
        "category_name": "Application Activity",
        "activity_id": activity_id,
        "activity_name": event.name,
        "type_uid": class_uid * 100 + activity_id,
        "severity_id": OCSF_SEVERITY[event.severity],
        "severity": event.severity.capitalize(),
        "status_id": 2 if failure else 1,
        "status": "Failure" if failure else "Success",
        "time": _time_ms(event),
        "message": event.message,
        "metadata": {
            "version": OCSF_VERSION,
            "product": {"name": PRODUCT, "vendor_name": VENDOR, "version": __version__},
            "event_code": str(event.type.id),
            "log_name": "sealbox.events",
            "sequence": event.sequence,
        },
        "device": {"hostname": event.host, "name": event.appliance},
        "unmapped": {"event": event.name, **event.fields},
    }


def json_payload(form: str, event: Event) -> str:
    """``ecs`` or ``ocsf`` as compact JSON (one line: it fits a syslog message and NDJSON)."""
    doc = ecs(event) if form == "ecs" else ocsf(event)
    return orjson.dumps(doc, default=str).decode()


def frame(message: str) -> bytes:
    """RFC 6587 octet counting (also RFC 5425 over TLS): ``LEN SP MSG``."""
    data = message.encode("utf-8")
    return str(len(data)).encode() + b" " + data


def email_subject(event: Event) -> str:
    return f"[Sealbox {event.appliance}] {event.severity.upper()}: {event.message}"[:200]


def email_text(event: Event) -> str:
    t = event.type
    lines = [
        f"{event.message}",
        "",
        f"What happened: {t.name} (event {t.id}, severity {event.severity})",
        f"Where:         appliance {event.appliance} (host {event.host})",
        f"When:          {event.time.strftime('%Y-%m-%d %H:%M:%S UTC')}",
    ]
    if "since" in event.fields:
        lines.append(f"Since:         {event.fields['since']}")
    for key, value in sorted(event.fields.items()):
        if key != "since":
            lines.append(f"{key + ':':<15}{value}")
    lines += ["", f"What to check: {t.check}", "", "-- Sealbox " + __version__, ""]
    return "\n".join(lines)


def email_html(event: Event) -> str:
    """The same content as :func:`email_text` as a small HTML page (every value escaped)."""
    esc = html.escape
    t = event.type
    colour = {"critical": "#b91c1c", "error": "#dc2626", "warning": "#d97706"}.get(
        event.severity, "#2563eb"
    )
    rows = [
        ("What happened", f"{t.name} (event {t.id}, severity {event.severity})"),
        ("Where", f"appliance {event.appliance} (host {event.host})"),
        ("When", event.time.strftime("%Y-%m-%d %H:%M:%S UTC")),
        *sorted((k, str(v)) for k, v in event.fields.items()),
    ]
    cells = "".join(
        f'<tr><th style="text-align:left;padding:2px 12px 2px 0;color:#6b7280">{esc(k)}</th>'
        f"<td>{esc(v)}</td></tr>"
        for k, v in rows
    )
    return (
        '<!doctype html><html><body style="font-family:sans-serif;font-size:14px">'
        f'<h2 style="color:{colour};margin:0 0 8px">{esc(event.message)}</h2>'
        f"<table>{cells}</table>"
        f"<p><strong>What to check:</strong> {esc(t.check)}</p>"
        f'<p style="color:#6b7280">Sealbox {esc(__version__)}</p></body></html>'
    )
