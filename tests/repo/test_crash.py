"""A backup killed (SIGKILL) at random moments, many times: the repository stays consistent,
and the next backup completes, reusing what the killed ones uploaded."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
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
        proc = subprocess.Popen(
            command, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(0.1, 0.45))
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
