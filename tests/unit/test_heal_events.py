"""What a scrub or a repair tells the alert channels (events 410-413)."""

from __future__ import annotations

from sealbox.alerts.events import CATALOGUE, make_event
from sealbox.alerts.report import heal_events
from sealbox.repo.heal import HealReport, Verdict


def _report(*verdicts: Verdict) -> HealReport:
    return HealReport(checked=50, verdicts=list(verdicts))


def test_a_clean_scrub_says_so():
    assert heal_events("vault", _report(), False, 1.5) == [
        ("scrub.clean", {"destination": "vault", "checked": 50, "duration_s": 1.5})
    ]


def test_a_scrub_that_finds_damage_counts_it():
    events = heal_events(
        "vault",
        _report(Verdict("data/ab/x", "repairable"), Verdict("index/y", "intact", "damaged")),
        False,
    )
    assert [name for name, _ in events] == ["scrub.damage_found"]
    fields = events[0][1]
    assert (fields["damaged"], fields["repairable"], fields["lost"]) == (2, 1, 0)
    assert fields["objects"] == "data/ab/x, index/y"


def test_a_repair_reports_what_it_healed_and_what_is_lost():
    events = heal_events(
        "vault",
        _report(
            Verdict("data/ab/x", "repaired"),
            Verdict("refs/z", "intact", "rewritten"),
            Verdict("data/cd/w", "lost", reason="no parity"),
        ),
        True,
    )
    assert [name for name, _ in events] == ["repair.succeeded", "repair.lost"]
    assert events[0][1]["repaired"] == 1 and events[0][1]["parity_rewritten"] == 1
    assert events[1][1]["reason"] == "data/cd/w: no parity"
    for name, fields in events:
        event = make_event(name, "pam-01", **fields)
        assert event.type is CATALOGUE[name] and "{" not in event.message
    assert CATALOGUE["repair.lost"].severity == "critical"
