"""Single-bit flips anywhere are detected and named; never a wrong byte restored."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from sealbox.errors import SealboxError
from sealbox.repo.backup import run_backup
from sealbox.repo.check import run_check
from sealbox.repo.restore import plan_restore, run_restore
from tests.conftest import make_tree


def _flip(path: Path, rng: random.Random) -> int:
    data = bytearray(path.read_bytes())
    position = rng.randrange(len(data))
    data[position] ^= 1 << rng.randrange(8)
    path.write_bytes(bytes(data))
    return position


def _repo_files(env, prefix):
    root = Path(env.url.removeprefix("file://"))
    return sorted(p for p in (root / prefix).rglob("*") if p.is_file())


@pytest.fixture
def backed_up(env, tmp_path):
    src = make_tree(tmp_path / "src", big=2_500_000)
    (src / "etc" / "other.conf").write_text("independent file\n")
    run_backup(env.writer(), [src], state_dir=env.state)
    return env, src


@pytest.mark.parametrize("seed", range(6))
def test_flipped_pack_bit_is_named_by_check_and_read_data(backed_up, seed):
    env, _src = backed_up
    rng = random.Random(seed)
    packs = _repo_files(env, "data")
    damaged = rng.choice(packs)
    _flip(damaged, rng)
    report = run_check(env.writer())
    assert not report.ok and damaged.name in report.damaged_packs
    assert report.affected_snapshots, "the snapshot needing the pack is named"
    repo, reader = env.reader()
    deep = run_check(repo, reader=reader, read_data=True)
    assert not deep.ok
    named = [f for files in deep.affected_snapshots.values() for f in files]
    assert named and all(f.startswith("/") for f in named)


def test_restore_skips_damaged_files_and_restores_the_rest(backed_up, tmp_path):
    env, src = backed_up
    repo, reader = env.reader()
    snapshot = repo.snapshots()[-1]
    plan = plan_restore(repo, reader.index, reader, snapshot, tmp_path / "out")
    # Damage the blob of the big recording only.
    big = next(e for e in plan.entries if e.path.endswith("rec.bin"))
    pack, entry = reader.index.lookup(bytes.fromhex(big.node["content"][0]))
    pack_file = next(p for p in _repo_files(env, "data") if p.name == pack)
    data = bytearray(pack_file.read_bytes())
    data[entry.offset + 40] ^= 0x10
    pack_file.write_bytes(bytes(data))
    result = run_restore(repo, reader.index, reader, plan, tmp_path / "out")
    assert [f for f in result.failed if "rec.bin" in f]
    copy = tmp_path / "out" / str(src).lstrip("/")
    assert not os.path.lexists(copy / "var" / "rec.bin"), "a failed file is not left on disk"
    assert sorted(os.listdir(copy / "var")) == ["log"]
    assert (copy / "etc" / "other.conf").read_text() == "independent file\n"
    assert (copy / "var" / "log" / "audit.log").read_text() == (
        src / "var" / "log" / "audit.log"
    ).read_text()


@pytest.mark.parametrize("prefix", ["index", "snapshots", "refs", "keys", "datakeys"])
def test_flipped_bit_in_metadata_is_detected_and_named(backed_up, prefix):
    env, _ = backed_up
    target = _repo_files(env, prefix)[0]
    _flip(target, random.Random(1))
    try:
        repo, reader = env.reader()
    except SealboxError as exc:
        assert prefix == "keys", exc  # only a damaged key object stops the repository opening
        return
    report = run_check(repo, reader=reader, read_data=True)
    assert not report.ok
    assert any(target.name[:12] in e for e in report.errors), report.errors


def test_check_passes_on_a_healthy_repository(backed_up):
    env, _ = backed_up
    assert run_check(env.writer()).ok
    repo, reader = env.reader()
    report = run_check(repo, reader=reader, read_data=True)
    assert report.ok and report.blobs_checked > 0
