"""A file:// share that fails under the local backend, played with real filesystems: a tmpfs that
fills up (ENOSPC), is remounted read-only (EROFS) or is unmounted under a running backend; an
sshfs mount whose FUSE daemon dies (ENOTCONN) or whose server goes away and comes back (EIO).
Each is a typed destination error naming the share, transient or permanent as ``Retrying``
expects; never a bare OSError (which the CLI reports as a bug, exit 70)."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import pytest

from sealbox.backends.local import TMP_STALE_AFTER, LocalBackend
from sealbox.backends.localfs import os_error
from sealbox.backends.retry import Retrying
from sealbox.errors import DestinationError, NotFoundError, TransientDestinationError
from tests.mounts import SambaShare, SSHFSShare, mount_tmpfs, remount, umount


def _retrying(root: Path) -> Retrying:
    """The local backend as every run opens it (retries), without the waits between tries."""
    return Retrying(LocalBackend(root), sleep=lambda _: None)


def _leftovers(path: Path) -> list[str]:
    return [p.name for p in path.rglob(".tmp-*")]


@pytest.fixture
def tmpfs(tmp_path):
    share = tmp_path / "share"
    mount_tmpfs(share, "1m")
    yield share
    umount(share)


@pytest.fixture
def sshfs(tmp_path):
    share = SSHFSShare(tmp_path)
    share.start_server()
    share.mount_share()
    yield share
    share.close()


@pytest.mark.parametrize(
    "code", [errno.ENOTCONN, errno.ESTALE, errno.EIO, errno.ETIMEDOUT, errno.EHOSTUNREACH]
)
def test_a_lost_share_errno_is_transient_and_says_so(code):
    error = os_error("file:///mnt/nas", "write data/b6/x", OSError(code, os.strerror(code)))
    assert isinstance(error, TransientDestinationError)
    assert str(error).startswith("file:///mnt/nas: the share was lost: cannot write data/b6/x")


@pytest.mark.parametrize(
    ("code", "says"),
    [(errno.ENOSPC, "is full"), (errno.EDQUOT, "is full"), (errno.EROFS, "is read-only")],
)
def test_a_full_or_read_only_share_is_permanent(code, says):
    error = os_error("file:///mnt/nas", "write x", OSError(code, os.strerror(code)))
    assert type(error) is DestinationError
    assert f"the share {says}: cannot write x" in str(error)


def test_a_full_share_fails_the_put_without_retrying_and_leaves_no_temporary(tmpfs):
    backend = _retrying(tmpfs / "repo")
    backend.put("config", b"c")
    with pytest.raises(DestinationError, match="the share is full: cannot write data/ab/big") as e:
        backend.put("data/ab/big", os.urandom(2 << 20))
    assert not isinstance(e.value, TransientDestinationError)
    assert backend.retries == 0
    assert _leftovers(tmpfs) == []
    assert backend.get("config") == b"c"


def test_a_share_remounted_read_only_refuses_writes_and_still_reads(tmpfs):
    backend = _retrying(tmpfs / "repo")
    backend.put("index/a", b"kept")
    backend.flush()
    remount(tmpfs, "ro")
    with pytest.raises(DestinationError, match="the share is read-only: cannot write index/b"):
        backend.put("index/b", b"new")
    with pytest.raises(DestinationError, match="the share is read-only: cannot delete index/a"):
        backend.delete("index/a")
    assert backend.retries == 0
    assert backend.get("index/a") == b"kept"
    assert [o.name for o in backend.list()] == ["index/a"]


def test_an_unmounted_share_is_lost_and_nothing_lands_on_its_mount_point(tmp_path):
    share = tmp_path / "share"
    mount_tmpfs(share, "1m")
    backend = _retrying(share / "repo")
    backend.put("data/ab/first", b"x")
    umount(share)  # the empty mount point (the appliance's own disk) is at the same path now
    try:
        with pytest.raises(DestinationError, match="the share was lost: the directory is gone"):
            backend.put("data/ab/second", b"y")
        with pytest.raises(DestinationError, match="the share was lost"):
            backend.get("data/ab/first")  # not NotFoundError: a check would call packs missing
        with pytest.raises(DestinationError, match="the share was lost"):
            list(backend.list())
        assert list(share.iterdir()) == []  # no repo/, no data/ made on the appliance's disk
        # Another filesystem mounted there (a remount, or the wrong share): not ours either.
        mount_tmpfs(share, "1m")
        (share / "repo").mkdir()
        with pytest.raises(DestinationError, match="the directory is another directory now"):
            backend.put("data/ab/second", b"y")
        # A run that starts now sees the share as it is.
        fresh = _retrying(share / "repo")
        with pytest.raises(NotFoundError):
            fresh.get("data/ab/first")
    finally:
        umount(share)


def test_a_dead_fuse_daemon_is_a_lost_share_retried_then_reported(sshfs):
    backend = _retrying(sshfs.mount / "repo")
    backend.put("data/ab/first", b"x")
    sshfs.kill_client()  # what the issue saw: every access is ENOTCONN
    with pytest.raises(TransientDestinationError, match="the share was lost") as e:
        backend.put("data/ab/second", b"y")
    assert "Transport endpoint is not connected" in str(e.value)
    assert str(sshfs.mount) in str(e.value) and "Traceback" not in str(e.value)
    assert backend.retries > 0
    with pytest.raises(TransientDestinationError, match="the share was lost"):
        backend.get("data/ab/first")
    with pytest.raises(DestinationError, match="the share was lost"):
        list(backend.list())
    assert backend.filesystem() is None  # the probe's filesystem type: unknown, not a crash
    with pytest.raises(DestinationError, match="the share was lost"):
        backend.capacity()


def test_a_server_gone_behind_sshfs_fails_the_put_and_the_share_works_once_it_returns(sshfs):
    backend = _retrying(sshfs.mount / "repo")
    backend.put("data/ab/first", b"x")
    sshfs.kill_server()  # sshfs stays mounted (reconnect) and answers EIO meanwhile
    with pytest.raises(TransientDestinationError, match="the share was lost") as e:
        backend.put("data/ab/second", b"y")
    assert "Input/output error" in str(e.value)
    sshfs.start_server()
    backend.put("data/ab/second", b"y")
    backend.flush()
    assert backend.get("data/ab/second") == b"y"
    assert sorted(o.name for o in backend.list("data/")) == ["data/ab/first", "data/ab/second"]


def test_temporary_files_of_interrupted_puts_are_swept_by_the_rule(tmp_path):
    root = tmp_path / "repo"
    backend = LocalBackend(root)
    backend.put("data/ab/pack", b"p")
    old = time.time() - TMP_STALE_AFTER - 60
    leftovers = {
        "data/ab/.tmp-0123456789abcdef": old,  # ours, old: removed
        ".tmp-fedcba9876543210": old,  # ours, old, at the root: removed
        "data/ab/.tmp-00112233445566aa": time.time() - 60,  # a live put's (recent): kept
        "data/ab/.tmp-0123": old,  # not a name put makes: kept
        "data/ab/.tmp-0123456789ABCDEF": old,  # not a name put makes (upper case): kept
        "data/ab/other.tmp-0123456789abcdef": old,  # an object name: kept
    }
    for name, mtime in leftovers.items():
        (root / name).write_bytes(b"t")
        os.utime(root / name, (mtime, mtime))
    target = tmp_path / "elsewhere"
    target.write_bytes(b"not ours")
    os.symlink(target, root / "data" / ".tmp-aaaaaaaaaaaaaaaa")  # a symlink: never followed
    os.utime(root / "data" / ".tmp-aaaaaaaaaaaaaaaa", (old, old), follow_symlinks=False)

    assert backend.sweep_temporaries(recursive=False) == 1  # the root's only
    assert not (root / ".tmp-fedcba9876543210").exists()
    assert backend.sweep_temporaries() == 1
    remaining = sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())
    assert remaining == sorted(
        [
            "data/.tmp-aaaaaaaaaaaaaaaa",
            "data/ab/.tmp-0123",
            "data/ab/.tmp-00112233445566aa",
            "data/ab/.tmp-0123456789ABCDEF",
            "data/ab/other.tmp-0123456789abcdef",
            "data/ab/pack",
        ]
    )
    assert target.read_bytes() == b"not ours"
    assert LocalBackend(tmp_path / "never-made").sweep_temporaries() == 0


def test_a_samba_share_whose_server_dies_is_lost_and_works_once_it_returns(tmp_path):
    """smbd on loopback, mounted by smbnetfs (FUSE; the kernel here has no CIFS client)."""
    samba = SambaShare(tmp_path)
    samba.start_server()
    try:
        samba.mount_share()
        backend = _retrying(samba.share / "repo")
        backend.put("index/first", b"x" * 5000)
        backend.flush()
        assert (samba.served / "repo" / "index" / "first").read_bytes() == b"x" * 5000
        # smbnetfs has no hard links: exclusive writes cannot work there, and it is said so.
        with pytest.raises(DestinationError, match="does not support hard links") as e:
            backend.put("locks/x", b"lock", exclusive=True)
        assert not isinstance(e.value, TransientDestinationError)
        samba.kill_server()
        with pytest.raises(TransientDestinationError, match="the share was lost") as lost:
            backend.put("index/second", b"y")
        assert backend.retries > 0 and "Traceback" not in str(lost.value)
        samba.start_server()
        deadline = time.monotonic() + 60  # smbnetfs reconnects on a later request
        while True:
            try:
                backend.put("index/second", b"y")
                break
            except TransientDestinationError:
                assert time.monotonic() < deadline, "the share did not come back within 60 s"
                time.sleep(1)
        assert backend.get("index/second") == b"y"
        assert (samba.served / "repo" / "index" / "second").read_bytes() == b"y"
    finally:
        samba.close()
