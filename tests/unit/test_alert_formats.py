"""The alert wire formats, parsed back with strict grammars; the event catalogue page."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from sealbox.alerts import formats
from sealbox.alerts.events import CATALOGUE, Event, event_markdown
from tests.receivers import cef_labelled, parse_cef, parse_leef, parse_rfc5424

DOCS = Path(__file__).parents[2] / "docs" / "reference" / "events.md"

NASTY = "a|b=c\\d\ne\tf ^g"


def _event(name: str = "destination.unreachable", **fields: object) -> Event:
    return Event(
        name,
        datetime(2026, 11, 26, 8, 30, 1, 123456, tzinfo=UTC),
        "pam-01",
        "pam-01.example",
        {"destination": "offsite", "reason": "connection refused", **fields},
    )


def test_events_page_matches_the_catalogue():
    assert DOCS.read_text() == event_markdown(), "run `make docs`"


def test_ids_and_names_are_unique_and_every_title_formats():
    ids = [t.id for t in CATALOGUE.values()]
    assert len(ids) == len(set(ids))
    for t in CATALOGUE.values():
        event = Event(t.name, datetime.now(UTC), "a", "h", {f: "x" for f in t.fields})
        assert "{" not in event.message


def test_rfc5424_header():
    event = _event()
    line = formats.rfc5424(event, "payload here", "auth", 42)
    doc = parse_rfc5424(line)
    assert doc["facility"] == 4 and doc["severity"] == 3
    assert doc["time"] == "2026-11-26T08:30:01.123Z"
    assert doc["host"] == "pam-01.example" and doc["app"] == "sealbox" and doc["procid"] == "42"
    assert doc["msgid"] == "destination.unreachable" and doc["sd"] == "-"
    assert doc["msg"] == "payload here"


def test_rfc5424_host_with_spaces_stays_one_token():
    event = _event()
    event.host = "bad host\tname"
    assert parse_rfc5424(formats.rfc5424(event, "x"))["host"] == "bad_host_name"


def test_cef_fields_and_escaping():
    event = _event(reason=NASTY, consecutive_failures=3, last_success="2026-11-25T08:00:00Z")
    doc = parse_cef(formats.cef(event))
    assert (doc["vendor"], doc["product"], doc["signature"]) == ("Sealbox", "Sealbox", "100")
    assert doc["name"] == "destination.unreachable" and doc["severity"] == 8
    ext = doc["ext"]
    assert ext["reason"] == NASTY  # every special character survives the round trip
    assert ext["dvchost"] == "pam-01.example" and ext["deviceExternalId"] == "pam-01"
    assert ext["destinationServiceName"] == "offsite" and ext["outcome"] == "failure"
    assert ext["rt"] == str(int(event.time.timestamp() * 1000))
    labels = cef_labelled(ext)
    assert labels["consecutive_failures"] == "3"
    assert labels["last_success"] == "2026-11-25T08:00:00Z"


def test_cef_header_escapes_pipes():
    event = _event()
    event.appliance = "x|y"
    assert parse_cef(formats.cef(event))["ext"]["deviceExternalId"] == "x|y"


def test_leef_fields_and_cleaning():
    event = _event(reason=NASTY, consecutive_failures=2)
    doc = parse_leef(formats.leef(event))
    assert doc["event"] == "destination.unreachable" and doc["vendor"] == "Sealbox"
    attrs = doc["attrs"]
    assert attrs["sev"] == "8" and attrs["cat"] == "destination"
    assert attrs["identHostName"] == "pam-01.example" and attrs["destination"] == "offsite"
    assert attrs["consecutive_failures"] == "2" and attrs["outcome"] == "failure"
    assert attrs["reason"] == "a|b=c\\d e f ^g"  # tab and newline cannot survive LEEF: spaces
    assert attrs["devTime"] == str(int(event.time.timestamp() * 1000))


def test_plain_is_one_line():
    text = formats.plain(_event(reason=NASTY))
    assert "\n" not in text and text.startswith("ERROR destination offsite unreachable")


def test_frame_counts_bytes_not_characters():
    assert formats.frame("héllo") == b"6 h\xc3\xa9llo"


def test_email_text_says_what_where_when_and_what_to_check():
    text = formats.email_text(_event(since="2026-11-26T08:00:00Z"))
    assert "destination offsite unreachable: connection refused" in text
    assert "appliance pam-01" in text and "2026-11-26 08:30:01 UTC" in text
    assert "Since:         2026-11-26T08:00:00Z" in text and "What to check:" in text
    assert formats.email_subject(_event()).startswith("[Sealbox pam-01] ERROR: destination")


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_every_event_renders_in_every_format(name):
    event = Event(name, datetime.now(UTC), "pam-01", "host", {"kind": "system"})
    parse_cef(formats.cef(event))
    parse_leef(formats.leef(event))
    parse_rfc5424(formats.rfc5424(event, formats.plain(event)))


def test_email_html_escapes_every_value():
    html = formats.email_html(_event(reason="<script>alert(1)</script>"))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "What to check" in html and "pam-01.example" in html
