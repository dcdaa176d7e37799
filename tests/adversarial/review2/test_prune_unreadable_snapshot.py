"""Review 2 finding: prune keeps what every *decoded* snapshot needs, and stops when a
reference list cannot be read, but a snapshot header that cannot be *read* (one failed GET: a
network drop, a timeout, an SFTP/S3/agent 5xx) is silently left out of the scan, so prune
deletes every pack only that snapshot needs. The snapshot is still listed, verified, and can
no longer be restored. Nothing adversarial is needed beyond one failed read; a storage
server (or whoever sits on a flaky link) can choose which snapshot loses its data."""

from __future__ import annotations

import contextlib
import os

from sealbox.backends import open_backend
from sealbox.errors import DestinationError, SealboxError
from sealbox.repo.backup import run_backup
from sealbox.repo.check import run_check
from sealbox.repo.forget import prune
from sealbox.repo.repository import Repository


class FlakyOnce:
    """Delegates to a real backend; the first read of one object fails like a dropped link."""

    def __init__(self, inner, victim: str) -> None:
        self.inner, self.victim, self.failed = inner, victim, False

    def get(self, name, offset=0, length=None):
        if name == self.victim and not self.failed:
            self.failed = True
            raise DestinationError(f"{self.inner.display}: cannot read {name}: connection reset")
        return self.inner.get(name, offset, length)

    def __getattr__(self, attr):
        return getattr(self.inner, attr)


def test_one_failed_snapshot_read_does_not_make_prune_delete_its_data(env, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "only-in-a").write_bytes(os.urandom(300_000))
    (b / "only-in-b").write_bytes(os.urandom(300_000))
    old = run_backup(env.writer(), [a], state_dir=env.state).snapshot
    run_backup(env.writer(), [b], state_dir=env.state)

    flaky = FlakyOnce(open_backend(env.url), f"snapshots/{old.id}")
    storage = Repository.open(flaky, env.identities, env.trust)  # no cache: every read is remote
    with contextlib.suppress(SealboxError):  # stopping is the right answer; deleting is not
        prune(storage)
    assert flaky.failed

    repo, _ = env.reader()
    assert old.id in [s.id for s in repo.snapshots()]  # still listed, verified...
    report = run_check(repo)
    assert report.ok, report.errors  # ...and its data must still be there


def test_forget_and_prune_stop_naming_the_snapshot_they_could_not_read(env, tmp_path):
    """The stop is explicit (one line naming the snapshot, nothing deleted), and forget, which
    keeps the reference lists other snapshots name, stops the same way."""
    import pytest

    from sealbox.errors import IntegrityError
    from sealbox.repo.forget import forget_snapshots

    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(os.urandom(50_000))
    old = run_backup(env.writer(), [src], state_dir=env.state).snapshot
    (src / "g").write_bytes(os.urandom(50_000))
    new = run_backup(env.writer(), [src], state_dir=env.state).snapshot
    for what, act in (("prune", prune), ("forget", lambda r: forget_snapshots(r, [new]))):
        flaky = FlakyOnce(open_backend(env.url), f"snapshots/{old.id}")
        storage = Repository.open(flaky, env.identities, env.trust)
        with pytest.raises(
            IntegrityError, match=rf"{what} stopped, nothing deleted: snapshot {old.id[:12]}"
        ):
            act(storage)
    repo, _ = env.reader()
    assert {old.id, new.id} <= {s.id for s in repo.snapshots()}
