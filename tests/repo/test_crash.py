"""A backup killed (SIGKILL) at random moments, many times: the repository stays consistent,
and the next backup completes, reusing what the killed ones uploaded."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from sealbox.repo.backup import run_backup
from sealbox.repo.check import run_check
from sealbox.repo.restore import plan_restore, run_restore


def test_sigkill_at_random_moments(env, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    rng = random.Random(42)
    for n in range(12):
        (src / f"rec-{n}.bin").write_bytes(rng.randbytes(3_000_000))
    for n in range(300):
        (src / f"conf-{n}.txt").write_text(f"setting {n} = {rng.random()}\n" * 40)
    environ = {**os.environ, "SEALBOX_STATE_DIR": str(env.state)}
    command = [sys.executable, "-m", "sealbox", "repo", "backup", env.url, str(src), "--json"]
    kills = mid_upload = 0
    root = Path(env.url.removeprefix("file://"))
    for attempt in range(20):
        if kills >= 8:
            break
        (src / f"conf-{attempt}.txt").write_text(f"changed {attempt}\n")  # every run has new data
        (src / f"new-{attempt}.bin").write_bytes(rng.randbytes(40_000_000))
        before = _objects(root)
        proc = subprocess.Popen(
            command, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        # Kill at a random moment after uploading began (the first new object under data/, a
        # temporary one or a pack), not after a fixed delay that a slow start-up can outlast.
        deadline = time.monotonic() + 60
        while proc.poll() is None and _objects(root) == before and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        report = run_check(env.writer())
        assert report.ok, (attempt, report.errors)
        # Evidence that the kill landed mid-run: packs no index names yet, or a put's
        # temporary file (never a partial object under a real name: check above says so).
        orphans = [n for n in report.notes if "not in any index yet" in n]
        leftovers = list((root / "data").rglob(".tmp-*")) if (root / "data").exists() else []
        mid_upload += bool(orphans or leftovers)
    assert kills >= 5, "the runs must actually be interrupted"
    assert mid_upload >= 1, "no kill landed while packs were being uploaded"
    final = run_backup(env.writer(), [src], state_dir=env.state)
    assert not final.warnings
    repo, reader = env.reader()
    deep = run_check(repo, reader=reader, read_data=True)
    assert deep.ok, deep.errors
    plan = plan_restore(
        repo, reader.index, reader, repo.find_snapshot(final.snapshot.id), tmp_path / "out"
    )
    result = run_restore(repo, reader.index, reader, plan, tmp_path / "out")
    assert not result.failed
    copy = tmp_path / "out" / str(src).lstrip("/")
    for path in src.iterdir():
        assert (copy / path.name).read_bytes() == path.read_bytes()


def test_prune_killed_at_random_moments_leaves_every_kept_snapshot_whole(env, tmp_path):
    """prune writes new packs, then the new index, then deletes: a SIGKILL at any point leaves
    every remaining snapshot complete, and the next prune finishes the job."""
    from sealbox.config.models import Retention
    from sealbox.repo.forget import apply_policy, prune

    src = tmp_path / "src"
    src.mkdir()
    rng = random.Random(7)
    for day in range(6):  # six snapshots, each replacing part of the data: garbage to reclaim
        for n in range(6):
            (src / f"part-{n}.bin").write_bytes(rng.randbytes(2_000_000))
        (src / f"day-{day}.txt").write_text(f"day {day}\n")
        run_backup(env.writer(), [src], state_dir=env.state)
    environ = {**os.environ, "SEALBOX_STATE_DIR": str(env.state)}
    command = [sys.executable, "-m", "sealbox", "repo", "forget", env.url, "--keep-last", "2",
               "--prune"]  # fmt: skip

    def garbage() -> None:  # a new snapshot replacing part of the data: space to reclaim
        for n in range(3):
            (src / f"part-{n}.bin").write_bytes(rng.randbytes(2_000_000))
        run_backup(env.writer(), [src], state_dir=env.state)

    started = time.perf_counter()
    subprocess.run(command, env=environ, check=True, capture_output=True)
    whole = time.perf_counter() - started  # how long one prune takes here, start-up included
    kills = 0
    for _ in range(6):
        garbage()
        kept = apply_policy(env.writer().snapshots(), Retention(keep_last=2), datetime.now(UTC))[0]
        proc = subprocess.Popen(
            command, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(0.4, 0.95) * whole)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        repo, reader = env.reader()
        report = run_check(repo)
        assert report.ok, report.errors
        assert {s.id for s in kept} <= {s.id for s in repo.snapshots()}
    assert kills >= 1, "no prune was interrupted"
    prune(env.writer())  # the interrupted work is finished
    repo, reader = env.reader()
    deep = run_check(repo, reader=reader, read_data=True)
    assert deep.ok, deep.errors
    newest = max(kept, key=lambda s: s.time)
    out = tmp_path / "out"
    plan = plan_restore(repo, reader.index, reader, repo.find_snapshot(newest.id), out)
    assert not run_restore(repo, reader.index, reader, plan, out).failed
    copy = out / str(src).lstrip("/")
    for path in src.iterdir():
        assert (copy / path.name).read_bytes() == path.read_bytes()


def _objects(root: Path) -> set[str]:
    """Every name under data/, temporary ones included."""
    data = root / "data"
    return {str(p) for p in data.rglob("*")} if data.exists() else set()
