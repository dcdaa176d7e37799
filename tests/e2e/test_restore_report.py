"""What went stale: after a system restore from an older snapshot, `sealbox restore report`
(and the restore's own summary) lists exactly the credentials changed since, from the newest
secrets backup: its signed change list without any key, or the backup itself with the key."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from sealbox.demo import appliance as demo_appliance
from sealbox.demo import vault


@pytest.fixture
def rotated(appliance, sealbox):
    demo_appliance.create_system(appliance.root)
    time.sleep(1.1)  # the vault's items were written in an earlier second than the snapshot
    for kind in ("secrets", "system"):
        assert sealbox("backup", kind, "--config", appliance.config).code == 0
    snapshot = json.loads(sealbox("snapshots", "--config", appliance.config, "--json").out)[-1]
    time.sleep(1.1)  # change times have whole seconds; the snapshot's has microseconds
    db = appliance.root / "appliance" / "vault.db"
    vault.next_day(db, changed=4, seed=3)
    with sqlite3.connect(db) as conn:
        changed = {
            r[0]
            for r in conn.execute(
                "SELECT id FROM items WHERE updated_at >= ?",
                (snapshot["time"][:19].replace("T", " "),),
            )
        }
    assert len(changed) == 4
    assert sealbox("backup", "secrets", "--config", appliance.config).code == 0
    appliance.snapshot, appliance.changed = snapshot["id"], changed
    return appliance


def test_the_change_list_names_exactly_what_changed_without_any_key(rotated, sealbox):
    done = sealbox("restore", "report", rotated.snapshot[:12], "--config", rotated.config, "--json")
    assert done.code == 0, done.err
    report = json.loads(done.out)
    assert report["source"] == "change list" and report["snapshot"] == rotated.snapshot
    assert {i["id"] for i in report["items"]} == rotated.changed
    assert all(i["name"] is None for i in report["items"])  # ids and times only
    assert report["total"] == 15 * 6 and report["undated"] == []
    table = sealbox("restore", "report", rotated.snapshot[:12], "--config", rotated.config)
    assert "4 of 90 credential(s) changed since" in table.out


def test_with_the_key_the_report_names_the_items(rotated, sealbox):
    done = sealbox(
        "restore",
        "report",
        "latest",
        *rotated.share_args(1, 2, 3),
        "--config",
        rotated.config,
        "--json",
    )
    assert done.code == 0, done.err
    report = json.loads(done.out)
    assert report["source"] == "secrets backup"
    assert {i["id"] for i in report["items"]} == rotated.changed
    assert all(i["name"] and i["type"] == "credential" for i in report["items"])
    assert "password" not in done.out.lower().replace('"password"', "")


def test_a_change_list_the_storage_side_edited_is_refused(rotated, sealbox):
    listed = sorted(rotated.remote.glob("secrets-*.age.changes.json"))[-1]
    doc = json.loads(listed.read_text())
    doc["items"] = doc["items"][:1]  # hide what changed
    listed.write_text(json.dumps(doc))
    done = sealbox("restore", "report", rotated.snapshot[:12], "--config", rotated.config)
    assert done.code == 5 and "signature" in done.err


def test_the_system_restore_ends_with_what_went_stale(rotated, sealbox, tmp_path):
    done = sealbox(
        "restore",
        "system",
        rotated.snapshot[:12],
        "--target",
        tmp_path / "out",
        *rotated.share_args(1, 2, 3),
        "--config",
        rotated.config,
        "--json",
    )
    assert done.code == 0, done.err
    stale = json.loads(done.out)["stale"]
    assert {i["id"] for i in stale["items"]} == rotated.changed
    shown = sealbox(
        "restore",
        "system",
        rotated.snapshot[:12],
        "--target",
        tmp_path / "again",
        *rotated.share_args(1, 2, 3),
        "--config",
        rotated.config,
    )
    assert shown.code == 0, shown.err
    assert "4 credential(s) changed since the snapshot" in shown.out


def test_an_older_change_list_under_a_newer_name_is_refused(rotated, sealbox):
    """The storage side copies the first backup's genuine files under a name dated later than
    the real newest: the report would miss every rotation since. The signed time must be the
    name's."""
    import shutil

    first = sorted(rotated.remote.glob("secrets-*.age"))[0]
    forged = first.name.replace(first.name.split("-")[3][:8], "20991231")
    for suffix in ("", ".sig", ".manifest.json", ".changes.json"):
        shutil.copy(rotated.remote / (first.name + suffix), rotated.remote / (forged + suffix))
    for args, why in (
        ((), "belongs to"),  # the list names its backup
        (tuple(rotated.share_args(1, 2, 3)), "which its name does not say"),  # the signed time
    ):
        done = sealbox("restore", "report", "latest", *args, "--config", rotated.config)
        assert done.code == 5, done.out + done.err
        assert why in done.err
