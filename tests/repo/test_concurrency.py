"""Two backups at once, and a backup during prune: no data lost; locks keep prune exclusive."""

from __future__ import annotations

import os
import random
import socket
import threading
from datetime import UTC, datetime

import orjson
import pytest

from sealbox.backends import open_backend
from sealbox.config.models import Retention
from sealbox.repo.backup import run_backup
from sealbox.repo.check import run_check
from sealbox.repo.forget import apply_policy, forget_snapshots, prune
from sealbox.repo.locks import Lock, LockedError
from sealbox.repo.restore import plan_restore, run_restore


def _tree(root, seed, files=40):
    rng = random.Random(seed)
    root.mkdir(parents=True)
    for n in range(files):
        (root / f"f{n}.bin").write_bytes(rng.randbytes(rng.randrange(1, 400_000)))
    return root


def _restore_matches(env, snapshot_id, src, target):
    repo, reader = env.reader()
    plan = plan_restore(repo, reader.index, reader, repo.find_snapshot(snapshot_id), target)
    result = run_restore(repo, reader.index, reader, plan, target)
    assert not result.failed
    copy = target / str(src).lstrip("/")
    for path in src.iterdir():
        assert (copy / path.name).read_bytes() == path.read_bytes()


def test_two_backups_at_once(env, tmp_path):
    a, b = _tree(tmp_path / "a", 1), _tree(tmp_path / "b", 2)
    shared = tmp_path / "a" / "shared.bin"
    shared.write_bytes(os.urandom(2_000_000))
    (tmp_path / "b" / "shared.bin").write_bytes(shared.read_bytes())
    results = {}

    def run(name, src):
        results[name] = run_backup(env.writer(), [src], state_dir=env.state)

    threads = [threading.Thread(target=run, args=(n, s)) for n, s in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(results) == {"a", "b"}
    repo, reader = env.reader()
    assert run_check(repo, reader=reader, read_data=True).ok
    _restore_matches(env, results["a"].snapshot.id, a, tmp_path / "out-a")
    _restore_matches(env, results["b"].snapshot.id, b, tmp_path / "out-b")


def test_backup_during_prune_loses_nothing(env, tmp_path):
    src = _tree(tmp_path / "src", 3, files=60)
    for n in range(4):
        (src / f"f{n}.bin").write_bytes(os.urandom(300_000))
        run_backup(env.writer(), [src], state_dir=env.state)
    repo = env.writer()
    keep, drop = apply_policy(repo.snapshots(), Retention(keep_last=1), datetime.now(UTC))
    forget_snapshots(repo, drop)
    (src / "late.bin").write_bytes(os.urandom(1_000_000))
    outcome = {}

    def do_prune():
        outcome["prune"] = prune(env.writer())

    def do_backup():
        outcome["backup"] = run_backup(env.writer(), [src], state_dir=env.state)

    threads = [threading.Thread(target=do_prune), threading.Thread(target=do_backup)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert "backup" in outcome and "prune" in outcome, "one waited for the other's lock"
    repo, reader = env.reader()
    report = run_check(repo, reader=reader, read_data=True)
    assert report.ok, report.errors
    _restore_matches(env, outcome["backup"].snapshot.id, src, tmp_path / "out")
    survivors = {s.id for s in repo.snapshots()}
    assert survivors == {keep[0].id, outcome["backup"].snapshot.id}


def test_exclusive_lock_excludes_and_stale_locks_are_taken_over(env):
    backend = open_backend(env.url)
    with (
        Lock(backend, exclusive=True, purpose="prune"),
        pytest.raises(LockedError, match="locked by prune"),
    ):
        Lock(backend, exclusive=False, purpose="backup").acquire(wait=0.3)
    dead = orjson.dumps(
        {
            "host": socket.gethostname(),
            "pid": 2**22 + 12345,
            "exclusive": True,
            "refreshed": 0,
            "purpose": "prune",
        }
    )
    backend.put("locks/dead", dead)
    with Lock(backend, exclusive=False, purpose="backup"):
        pass
    assert [o.name for o in backend.list("locks/")] == []


def test_a_restore_holds_prune_off(env):
    """Restore takes a shared lock: a prune cannot delete packs it is reading."""
    from sealbox.repo.forget import prune
    from sealbox.repo.locks import reading_lock

    warnings: list[str] = []
    with (
        reading_lock(open_backend(env.url), "restore", warnings.append),
        pytest.raises(LockedError, match="locked by restore"),
    ):
        Lock(open_backend(env.url), exclusive=True, purpose="prune").acquire(wait=0.3)
    assert not warnings
    prune(env.writer())  # free again once the restore is done


def test_a_read_only_destination_is_read_without_the_lock(env, tmp_path):
    """Custodians restoring from a read-only mount (or read-only credentials) still restore."""
    import subprocess

    from sealbox.repo.locks import reading_lock
    from tests.conftest import IN_CI

    view = tmp_path / "ro-view"
    view.mkdir()
    source = env.url.removeprefix("file://")
    bound = subprocess.run(["mount", "--bind", source, str(view)], capture_output=True, check=False)
    if bound.returncode != 0:
        if IN_CI:
            pytest.fail(f"cannot bind-mount under CI: {bound.stderr.decode()}")
        pytest.skip("needs root to make a read-only bind mount")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
        warnings: list[str] = []
        with reading_lock(open_backend(f"file://{view}"), "restore", warnings.append) as lock:
            assert lock is None
        assert warnings and "could not take a shared lock" in warnings[0]
    finally:
        subprocess.run(["umount", str(view)], check=False)
