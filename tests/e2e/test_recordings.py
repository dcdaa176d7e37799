"""Session recordings: incremental, never half-written, tamper-evident, restorable, retained."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import pytest

PATTERN = r"(?P<user>[^_]+)_(?P<target>[^_]+)_(?P<session>[^.]+)\.rec"


def _record(directory: Path, n: int, size: int = 300_000, age: float = 600) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"user{n % 3}_srv-{n:03d}_sess-{n:05d}.rec"
    path.write_bytes(random.Random(n).randbytes(size))
    when = time.time() - age
    os.utime(path, (when, when))
    return path


@pytest.fixture
def rec(appliance):
    root = appliance.root / "appliance" / "recordings"
    for n in range(6):
        _record(root / "2026" / "11" / f"{n % 2 + 24:02d}", n)
    sidecar = root / "2026" / "11" / "24" / "user0_srv-000_sess-00000.rec.json"
    sidecar.write_text(
        json.dumps({"session": "sess-00000", "user": "alice", "target": "db-primary"})
    )
    base = appliance.config.read_text().split("\n[recordings]")[0]  # the test's own section instead
    text = base + (
        f'\n[recordings]\ndestination = "remote"\npath = "{root}"\nsettle_seconds = 60\n'
        f"name_pattern = '{PATTERN}'\nretention = {{ keep_within = \"5y\" }}\n"
    )
    appliance.config.write_text(text)
    appliance.recordings = root
    return appliance


def _backup(sealbox, rec):
    result = sealbox("backup", "recordings", "--config", rec.config, "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def _verify(sealbox, rec, *extra):
    return sealbox("recordings", "verify", "--config", rec.config, *extra)


def test_incremental_runs_store_only_new_recordings(rec, sealbox):
    first = _backup(sealbox, rec)
    assert first["stored"] == 6 and first["last_seq"] == 6
    assert _backup(sealbox, rec)["stored"] == 0
    _record(rec.recordings / "2026" / "11" / "26", 100)
    _record(rec.recordings / "2026" / "11" / "26", 101)
    third = _backup(sealbox, rec)
    assert third["stored"] == 2 and third["last_seq"] == 8
    assert _verify(sealbox, rec).code == 0
    deep = _verify(sealbox, rec, "--read-data", *rec.share_args(1, 2, 3), "--json")
    assert deep.code == 0 and json.loads(deep.out)["recordings"] == 8


def test_a_recording_being_written_is_left_for_later(rec, sealbox):
    live_dir = rec.recordings / "live"
    live = _record(live_dir, 200, age=600)
    with open(live, "ab") as handle:  # still being recorded: open by a process
        handle.write(b"more")
        fresh = _record(live_dir, 201, age=0)  # just written: inside the settle window
        result = _backup(sealbox, rec)
        waiting = " ".join(result["waiting"])
        assert "open by a process" in waiting and "changed less than 60 s ago" in waiting
        assert result["stored"] == 6
    when = time.time() - 600
    os.utime(live, (when, when))
    os.utime(fresh, (when, when))
    assert _backup(sealbox, rec)["stored"] == 2


def test_restore_by_session_and_by_time(rec, sealbox, tmp_path):
    _backup(sealbox, rec)
    out = tmp_path / "one"
    result = sealbox(
        "restore",
        "recordings",
        "--session",
        "sess-00003",
        "--target",
        out,
        *rec.share_args(1, 2, 3),
        "--config",
        rec.config,
        "--json",
    )
    assert result.code == 0, result.err
    restored = [p for p in out.rglob("*.rec")]
    assert len(restored) == 1 and restored[0].read_bytes() == random.Random(3).randbytes(300_000)
    by_sidecar = sealbox(
        "restore",
        "recordings",
        "--session",
        "sess-00000",
        "--target",
        tmp_path / "side",
        *rec.share_args(1, 2, 3),
        "--config",
        rec.config,
        "--json",
    )
    assert by_sidecar.code == 0 and json.loads(by_sidecar.out)["restored"] == 1
    window = sealbox(
        "restore",
        "recordings",
        "--since",
        "2000-01-01T00:00:00",
        "--target",
        tmp_path / "all",
        *rec.share_args(1, 2, 3),
        "--config",
        rec.config,
        "--json",
    )
    assert window.code == 0 and json.loads(window.out)["restored"] == 6
    none = sealbox(
        "restore",
        "recordings",
        "--session",
        "nope",
        "--target",
        tmp_path / "x",
        *rec.share_args(1, 2, 3),
        "--config",
        rec.config,
    )
    assert none.code == 8


def _repo_dir(rec) -> Path:
    return rec.remote / "repo"


def test_altered_recording_is_named(rec, sealbox):
    _backup(sealbox, rec)
    packs = sorted((_repo_dir(rec) / "data").rglob("*"), key=lambda p: p.stat().st_size)
    victim = [p for p in packs if p.is_file()][-1]
    data = bytearray(victim.read_bytes())
    data[100] ^= 1
    victim.write_bytes(bytes(data))
    result = _verify(sealbox, rec)
    assert (
        result.code == 5 and "altered at the destination" in result.out and "session" in result.out
    )


def test_removed_batch_and_rollback_are_detected(rec, sealbox):
    _backup(sealbox, rec)
    _record(rec.recordings / "new", 300)
    _backup(sealbox, rec)
    batches = sorted((_repo_dir(rec) / "recordings").glob("batch-*"))
    assert len(batches) == 2
    saved = batches[-1].read_bytes()
    batches[-1].unlink()  # the newest batch gone: the destination was rolled back
    rolled = _verify(sealbox, rec)
    assert rolled.code == 5 and "rolled back" in rolled.out
    batches[-1].write_bytes(saved)
    batches[0].unlink()  # an older batch gone: a hole in the chain
    hole = _verify(sealbox, rec)
    assert hole.code == 5 and "missing (a manifest batch was removed)" in hole.out


def test_retention_never_prunes_young_recordings_and_verify_still_passes(rec, sealbox):
    _backup(sealbox, rec)
    text = rec.config.read_text().replace('keep_within = "5y"', 'keep_within = "1h"')
    rec.config.write_text(text)
    assert sealbox("forget", "--config", rec.config).code == 0
    snaps = json.loads(
        sealbox("snapshots", "--kind", "recordings", "--config", rec.config, "--json").out
    )
    assert len(snaps) == 1, "a snapshot younger than the policy is kept"
    assert _verify(sealbox, rec).code == 0


def test_recordings_removed_by_policy_are_not_reported_as_tampering(rec, sealbox):
    _backup(sealbox, rec)
    time.sleep(1.2)
    rec.config.write_text(
        rec.config.read_text().replace('keep_within = "5y"', 'keep_within = "1s"')
    )
    assert sealbox("forget", "--config", rec.config).code == 0
    assert (
        json.loads(
            sealbox("snapshots", "--kind", "recordings", "--config", rec.config, "--json").out
        )
        == []
    )
    result = _verify(sealbox, rec, "--json")
    assert result.code == 0, result.out
    assert json.loads(result.out)["removed_by_policy"] == 6


def test_a_lost_catalog_is_rebuilt_from_the_next_batches(rec, sealbox):
    _backup(sealbox, rec)
    for catalog in (rec.root / "appliance" / "state" / "recordings").rglob("catalog.sqlite*"):
        catalog.unlink()  # as if the run died after storing its batch, before its catalog update
    again = _backup(sealbox, rec)
    assert again["stored"] == 0 and again["last_seq"] == 6
    _record(rec.recordings / "later", 400)
    assert _backup(sealbox, rec)["last_seq"] == 7
    assert _verify(sealbox, rec).code == 0


def test_reordered_or_edited_manifest_entries_are_detected(rec, sealbox):
    from sealbox.config import load_config
    from sealbox.destinations.repos import open_product_repo
    from sealbox.recordings import manifest

    _backup(sealbox, rec)
    repo, _ = open_product_repo(load_config(rec.config), "remote", [], create=False)
    name = next(o.name for o in repo.backend.list("recordings/batch-"))
    batch = manifest.decode_batch(repo.backend.get(name), repo.keys.index_key, name)
    batch.entries[0], batch.entries[1] = (
        batch.entries[1],
        batch.entries[0],
    )  # reorder, keep the old signature
    repo.backend.put(name, manifest.encode_batch(batch, repo.keys.index_key))
    result = _verify(sealbox, rec)
    assert result.code == 5
    assert "signature invalid" in result.out and "out of order" in result.out
