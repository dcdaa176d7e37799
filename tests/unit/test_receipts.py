"""Break-glass receipts (format) and the rotation tasks they become."""

from __future__ import annotations

import json

import pytest

from sealbox.breakglass import receipts, rotations
from sealbox.errors import CorruptFileError, NotFoundError


def _receipt(events=None, **changes):
    body = receipts.new_receipt(
        backup={
            "file": "secrets-pam-01-20260101T000000Z.age",
            "appliance": "pam-01",
            "created": "2026-01-01T00:00:00Z",
            "sha256": "ab" * 32,
        },
        key_id="6d15-2fa9-c011-05bb",
        signer="SHA256:x",
        verified=True,
        shares=[(27838, 1), (27838, 3)],
        opener_version="0.1.0",
    )
    body["events"] = (
        events
        if events is not None
        else [
            {
                "time": "2026-01-02T00:00:00Z",
                "action": "reveal",
                "items": [{"id": "1", "name": "db1 root", "type": "credential"}],
            },
            {
                "time": "2026-01-02T00:01:00Z",
                "action": "export",
                "format": "csv",
                "items": [
                    {"id": "1", "name": "db1 root", "type": "credential"},
                    {"id": "2", "name": "api", "type": "secret"},
                ],
            },
        ]
    )
    body.update(changes)
    return json.dumps(body).encode()


def test_a_receipt_lists_each_item_once_with_its_first_reveal():
    parsed = receipts.parse_receipt(_receipt())
    assert [(i.id, when, how) for i, when, how in parsed.items()] == [
        ("1", "2026-01-02T00:00:00Z", "reveal"),
        ("2", "2026-01-02T00:01:00Z", "export (csv)"),
    ]
    assert parsed.digest == receipts.parse_receipt(_receipt()).digest


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format": "other"}, "not a Sealbox break-glass receipt"),
        ({"version": 2}, "receipt version 2 is not supported"),
        ({"opened": "yesterday"}, "is not a UTC time"),
        ({"shares": [{"identifier": "x", "index": 1}]}, "shares is not a list"),
        (
            {"events": [{"time": "2026-01-02T00:00:00Z", "action": "steal", "items": []}]},
            "action 'steal'",
        ),
        (
            {
                "events": [
                    {"time": "2026-01-02T00:00:00Z", "action": "reveal", "items": [{"id": 1}]}
                ]
            },
            "item id",
        ),
    ],
)
def test_a_malformed_receipt_is_refused_saying_why(changes, message):
    with pytest.raises(CorruptFileError, match=message):
        receipts.parse_receipt(_receipt(**changes))


def test_not_json_and_oversized_receipts_are_refused():
    with pytest.raises(CorruptFileError, match="not valid JSON"):
        receipts.parse_receipt(b"{")
    with pytest.raises(CorruptFileError, match="larger than"):
        receipts.parse_receipt(b" " * (receipts.MAX_RECEIPT + 1))


def test_an_import_opens_tasks_once_and_done_closes_them(tmp_path):
    receipt = receipts.parse_receipt(_receipt())
    first = rotations.import_receipt(tmp_path, receipt)
    assert first.new and first.revealed == 2
    assert [t["id"] for t in first.to_rotate] == ["1", "2"]
    again = rotations.import_receipt(tmp_path, receipt)
    assert not again.new and len(again.to_rotate) == 2
    rotations.mark_done(tmp_path, "1")
    assert [t["id"] for t in rotations.open_rotations(tmp_path)] == ["2"]
    with pytest.raises(NotFoundError, match="marked rotated already"):
        rotations.mark_done(tmp_path, "1")
    with pytest.raises(NotFoundError, match="no rotation task"):
        rotations.mark_done(tmp_path, "nope")


def test_a_later_reveal_reopens_a_rotated_item_and_an_older_receipt_does_not(tmp_path):
    rotations.import_receipt(tmp_path, receipts.parse_receipt(_receipt()))
    rotations.mark_done(tmp_path, "1")  # done now, long after 2026-01-02
    older = [
        {
            "time": "2026-01-01T00:00:00Z",
            "action": "copy",
            "items": [{"id": "1", "name": "db1 root", "type": "credential"}],
        }
    ]
    rotations.import_receipt(tmp_path, receipts.parse_receipt(_receipt(older)))
    assert "1" not in [t["id"] for t in rotations.open_rotations(tmp_path)]
    later = [
        {
            "time": "2999-01-01T00:00:00Z",
            "action": "reveal",
            "items": [{"id": "1", "name": "db1 root", "type": "credential"}],
        }
    ]
    rotations.import_receipt(tmp_path, receipts.parse_receipt(_receipt(later)))
    assert "1" in [t["id"] for t in rotations.open_rotations(tmp_path)]
