"""`sealbox backup system`, `snapshots`, `restore system`, `forget` as an operator runs them."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from sealbox.demo import appliance as demo_appliance
from tests.conftest import small_tmpfs


@pytest.fixture
def system(appliance):
    demo_appliance.create_system(appliance.root)
    return appliance


def _backup(sealbox, system):
    result = sealbox("backup", "system", "--config", system.config, "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_backup_list_restore_one_file_and_one_database(system, sealbox, tmp_path):
    summary = _backup(sealbox, system)
    assert summary["kind"] == "system" and len(summary["databases"]) == 2 and summary["files"] > 160
    snaps = json.loads(
        sealbox("snapshots", "--kind", "system", "--config", system.config, "--json").out
    )
    assert len(snaps) == 1 and {"id", "time", "kind", "paths", "size"} <= set(snaps[0])
    assert snaps[0]["extra"]["inventory"]["packages"] > 0

    target = tmp_path / "one"
    policy = "*/policies/policy-003.yaml"
    result = sealbox(
        "restore",
        "system",
        "latest",
        "--target",
        target,
        "--include",
        policy,
        *system.share_args(1, 2, 3),
        "--config",
        system.config,
        "--json",
    )
    assert result.code == 0, result.err
    restored = [p for p in target.rglob("*") if p.is_file()]
    assert sorted(p.name for p in restored) == ["inventory.json", "policy-003.yaml"]

    only_db = sealbox(
        "restore",
        "system",
        "latest",
        "--target",
        tmp_path / "db",
        "--database",
        "app.db",
        *system.share_args(1, 2, 3),
        "--config",
        system.config,
    )
    assert only_db.code == 0, only_db.err
    dump = next((tmp_path / "db" / ".sealbox").glob("db-*-app.db"))
    with sqlite3.connect(dump) as db:
        assert db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 5000


def test_databases_are_never_overwritten_without_replace(system, sealbox, tmp_path):
    _backup(sealbox, system)
    app_db = system.root / "appliance" / "var" / "lib" / "pam" / "app.db"
    with sqlite3.connect(app_db) as db:
        db.execute("DELETE FROM sessions")
    args = [
        "restore",
        "system",
        "latest",
        "--target",
        tmp_path / "t",
        "--databases",
        "--database",
        "app.db",
        *system.share_args(1, 2, 3),
        "--config",
        system.config,
    ]
    refused = sealbox(*args)
    assert refused.code == 10 and "refusing to overwrite" in refused.err
    with sqlite3.connect(app_db) as db:
        assert db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 0
    replaced = sealbox(*args, "--replace")
    assert replaced.code == 0, replaced.err
    with sqlite3.connect(app_db) as db:
        assert db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 5000


def test_dry_run_plans_and_writes_nothing(system, sealbox, tmp_path):
    _backup(sealbox, system)
    result = sealbox(
        "restore",
        "system",
        "latest",
        "--target",
        tmp_path / "plan",
        "--dry-run",
        "--database-files",
        *system.share_args(1, 2, 3),
        "--config",
        system.config,
        "--json",
    )
    assert result.code == 0, result.err
    plan = json.loads(result.out)
    assert plan["bytes"] > 0 and plan["free"] > plan["bytes"] and len(plan["databases"]) == 2
    assert not (tmp_path / "plan").exists()


def test_refuses_early_when_the_target_is_too_small(system, sealbox, tmp_path):
    _backup(sealbox, system)
    with small_tmpfs(tmp_path / "small", "1m") as small:
        result = sealbox(
            "restore",
            "system",
            "latest",
            "--target",
            small,
            *system.share_args(1, 2, 3),
            "--config",
            system.config,
        )
        assert result.code == 10 and "not enough space" in result.err and "are free" in result.err
        assert os.listdir(small) == []


def test_unreachable_database_publishes_no_snapshot(system, sealbox):
    _backup(sealbox, system)
    text = (
        system.config.read_text()
        + '\n[[system.databases]]\ntype = "postgresql"\nurl = "postgresql://postgres@127.0.0.1:1/none"\n'
    )
    system.config.write_text(text)
    failed = sealbox("backup", "system", "--config", system.config)
    assert failed.code == 6 and "postgresql" in failed.err and "Traceback" not in failed.err
    snaps = json.loads(sealbox("snapshots", "--config", system.config, "--json").out)
    assert len(snaps) == 1


def test_forget_keeps_what_is_younger_than_keep_at_least_and_says_why(system, sealbox):
    text = system.config.read_text().replace(
        "retention = { keep_last = 7 }", 'retention = { keep_last = 1, keep_at_least = "1d" }'
    )
    system.config.write_text(text)
    for _ in range(3):
        _backup(sealbox, system)
    done = sealbox("forget", "--config", system.config, "--json")
    assert done.code == 0, done.err
    report = json.loads(done.out)["system"]
    assert report["forgotten"] == [] and len(report["kept"]) == 3
    assert sorted(report["why"].values()) == ["younger than keep_at_least (1d)"] * 2
    assert len(json.loads(sealbox("snapshots", "--config", system.config, "--json").out)) == 3
    text_out = sealbox("forget", "--dry-run", "--config", system.config)
    assert text_out.out.count("kept, younger than keep_at_least (1d)") == 2


def test_a_legal_hold_keeps_a_snapshot_through_forget_until_released(system, sealbox):
    text = system.config.read_text().replace(
        "retention = { keep_last = 7 }", "retention = { keep_last = 1 }"
    )
    system.config.write_text(text)
    for _ in range(2):
        _backup(sealbox, system)
    snaps = json.loads(sealbox("snapshots", "--config", system.config, "--json").out)
    oldest = sorted(snaps, key=lambda s: s["time"])[0]["id"]
    held = sealbox(
        "hold", "add", oldest[:10], "--reason", "case 42", "--config", system.config, "--json"
    )
    assert held.code == 0, held.err
    hold = json.loads(held.out)
    assert hold["snapshot"] == oldest and hold["verified"] is True
    listed = json.loads(sealbox("hold", "list", "--config", system.config, "--json").out)
    assert [h["id"] for h in listed] == [hold["id"]]
    done = json.loads(sealbox("forget", "--config", system.config, "--json").out)
    assert done["system"]["forgotten"] == []
    assert done["system"]["why"][oldest].startswith("held (case 42)")
    released = sealbox("hold", "remove", hold["id"][:12], "--config", system.config)
    assert released.code == 0 and "Released" in released.out
    done = json.loads(sealbox("forget", "--config", system.config, "--json").out)
    assert done["system"]["forgotten"] == [oldest]
    missing = sealbox("hold", "add", "ffffffff", "--config", system.config)
    assert missing.code == 8 and "no snapshot" in missing.err and "Traceback" not in missing.err


def test_forget_applies_each_kinds_policy(system, sealbox):
    text = system.config.read_text().replace(
        "retention = { keep_last = 7 }", "retention = { keep_last = 2 }"
    )
    system.config.write_text(text)
    for _ in range(4):
        _backup(sealbox, system)
    dry = json.loads(sealbox("forget", "--dry-run", "--config", system.config, "--json").out)
    assert len(dry["system"]["forgotten"]) == 2
    assert len(json.loads(sealbox("snapshots", "--config", system.config, "--json").out)) == 4
    done = sealbox("forget", "--config", system.config, "--json")
    assert done.code == 0, done.err
    assert len(json.loads(sealbox("snapshots", "--config", system.config, "--json").out)) == 2
    check = sealbox(
        "repo",
        "--state-dir",
        system.root / "appliance" / "state",
        "check",
        f"file://{system.remote}/repo",
        "--read-data",
        *system.share_args(1, 2, 3),
    )
    assert check.code == 0, check.out + check.err


def test_a_new_ceremony_seals_new_backups_to_the_new_key(system, sealbox, tmp_path):
    first = _backup(sealbox, system)
    result = sealbox(
        "keys",
        "ceremony",
        "--shares",
        "3",
        "--threshold",
        "2",
        "--out",
        tmp_path / "new",
        "--config",
        system.config,
    )
    assert result.code == 0, result.err
    second = _backup(sealbox, system)
    new_shares = [
        "--share",
        str(tmp_path / "new" / "share-01.txt"),
        "--share",
        str(tmp_path / "new" / "share-02.txt"),
    ]
    restore = ["restore", "system", "--config", system.config, "--include", "*/pam.conf"]
    ok_new = sealbox(*restore, second["snapshot"][:12], "--target", tmp_path / "n", *new_shares)
    assert ok_new.code == 0, ok_new.err
    ok_old = sealbox(
        *restore, first["snapshot"][:12], "--target", tmp_path / "o", *system.share_args(1, 2, 3)
    )
    assert ok_old.code == 0, ok_old.err
    refused = sealbox(*restore, first["snapshot"][:12], "--target", tmp_path / "x", *new_shares)
    assert refused.code == 4 and "does not open this backup" in refused.err


def test_check_the_products_repository(system, sealbox):
    _backup(sealbox, system)
    plain = sealbox("check", "--config", system.config, "--json")
    assert plain.code == 0, plain.err
    assert json.loads(plain.out)["remote"]["ok"]
    deep = sealbox(
        "check", "--read-data", *system.share_args(1, 2, 3), "--config", system.config, "--json"
    )
    assert deep.code == 0 and json.loads(deep.out)["remote"]["blobs_checked"] > 0
    pack = next(p for p in (system.remote / "repo" / "data").rglob("*") if p.is_file())
    data = bytearray(pack.read_bytes())
    data[10] ^= 1
    pack.write_bytes(bytes(data))
    damaged = sealbox("check", "--config", system.config)
    assert damaged.code == 5 and "damaged" in damaged.out


def test_backups_find_reusable_keys_without_listing_snapshots(system, sealbox, monkeypatch):
    """The data keys new backups may share come from a local record each backup extends: a run
    reads no snapshot (a year of 15-minute recordings runs is 35,000 of them)."""
    from sealbox.repo.repository import Repository

    _backup(sealbox, system)
    _backup(sealbox, system)
    records = list((system.root / "appliance" / "state").rglob("reusable-keys.json"))
    assert len(records) == 1 and len(json.loads(records[0].read_text())["keys"]) == 2

    def no_listing(self):
        raise AssertionError("snapshots listed")

    monkeypatch.setattr(Repository, "snapshots", no_listing)
    third = _backup(sealbox, system)
    assert third["bytes_added"] < 200_000  # still deduplicated against the earlier runs
    assert len(json.loads(records[0].read_text())["keys"]) == 3
