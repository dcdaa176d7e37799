"""The storage side plants things in a ``file://`` share (an NFS/CIFS server, or anyone who can
write there): symlinks, FIFOs, symlinked directories. The local backend never follows them,
never hangs on them, never writes outside the share, and reports every failure as a
DestinationError that names the object."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

from sealbox.backends import open_backend
from sealbox.errors import DestinationError, NotFoundError
from sealbox.repo.backup import run_backup


def _root(env, subdir: str = "") -> Path:
    """The share's directory (``subdir`` made if need be, as a writer on the share could)."""
    path = Path(env.url.removeprefix("file://")) / subdir
    path.mkdir(parents=True, exist_ok=True)
    return path


def _in_time(call, seconds: float = 5.0):
    """Run ``call`` in a thread; fail (instead of hanging the suite) if it does not return."""
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{call} did not return within {seconds} s (it hangs)"
    return box


def test_a_symlink_to_dev_zero_in_snapshots_is_refused_not_read(env):
    os.symlink("/dev/zero", _root(env, "snapshots") / ("ab" * 32))
    backend = open_backend(env.url)
    box = _in_time(lambda: backend.get(f"snapshots/{'ab' * 32}"))
    error = box.get("error")
    assert isinstance(error, DestinationError) and "not a regular file" in str(error)
    assert f"snapshots/{'ab' * 32}" in str(error)
    with pytest.raises(DestinationError, match="not a regular file"):
        backend.stat(f"snapshots/{'ab' * 32}")
    # Listed (by lstat, never followed), so every reader meets the clear error:
    assert [o.name for o in backend.list("snapshots/")] == [f"snapshots/{'ab' * 32}"]
    # ...and listing snapshots names it as rejected and goes on (one planted object must not
    # block listing or restore).
    repo = env.writer()
    assert repo.snapshots() == []
    (rejected,) = repo.rejected
    assert rejected.name == "ab" * 32 and "is not a regular file" in rejected.reason


def test_a_fifo_in_snapshots_does_not_hang_a_reader(env):
    os.mkfifo(_root(env, "snapshots") / ("cd" * 32))
    backend = open_backend(env.url)
    box = _in_time(lambda: backend.get(f"snapshots/{'cd' * 32}"))
    assert isinstance(box.get("error"), DestinationError), box
    assert "not a regular file" in str(box["error"])


def test_a_symlinked_pack_directory_never_receives_a_pack(env, tmp_path):
    outside = tmp_path / "etc"
    outside.mkdir()
    data = _root(env) / "data"
    data.mkdir(exist_ok=True)
    for n in range(256):
        os.symlink(outside, data / f"{n:02x}")
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(os.urandom(10_000))
    with pytest.raises(DestinationError, match=r"data/[0-9a-f]{2} is not a directory"):
        run_backup(env.writer(), [src], state_dir=env.state)
    assert list(outside.iterdir()) == [], "nothing was written outside the share"


def test_reads_and_deletes_never_go_through_a_symlinked_directory(env, tmp_path):
    backend = open_backend(env.url)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_bytes(b"outside the share")
    os.symlink(outside, _root(env) / "locks")
    for call in (
        lambda: backend.get("locks/victim"),
        lambda: backend.get("locks/victim", 0, 4),
        lambda: backend.stat("locks/victim"),
        lambda: backend.delete("locks/victim"),
        lambda: backend.put("locks/new", b"x"),
    ):
        with pytest.raises(DestinationError, match="locks is not a directory"):
            call()
    assert sorted(os.listdir(outside)) == ["victim"]
    assert (outside / "victim").read_bytes() == b"outside the share"


def test_a_pack_range_read_refuses_a_planted_symlink(env, tmp_path):
    backend = open_backend(env.url)
    (tmp_path / "real").write_bytes(b"0123456789")
    (_root(env) / "data" / "ab").mkdir(parents=True)
    os.symlink(tmp_path / "real", _root(env) / "data" / "ab" / ("ab" * 32))
    with pytest.raises(DestinationError, match="not a regular file"):
        backend.get(f"data/ab/{'ab' * 32}", 2, 4)  # the cached-descriptor path


def test_a_put_replaces_a_planted_symlink_and_never_writes_through_it(env, tmp_path):
    backend = open_backend(env.url)
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    os.symlink(victim, _root(env, "index") / "x")
    backend.put("index/x", b"new")
    assert victim.read_bytes() == b"keep"
    assert not os.path.islink(_root(env, "index") / "x")
    assert backend.get("index/x") == b"new"
    os.symlink(tmp_path / "absent", _root(env, "index") / "y")
    with pytest.raises(DestinationError, match="exists already"):
        backend.put("index/y", b"new", exclusive=True)
    assert not os.path.lexists(tmp_path / "absent")


def test_a_vanished_share_is_a_destination_error_even_in_cleanup(tmp_path):
    # The mount point replaced under a running backend (what a vanished or remounted share looks
    # like from here): every path below it fails with ENOTDIR, the cleanup unlink included.
    share = tmp_path / "share"
    backend = open_backend(f"file://{share}/repo")
    backend.put("data/ab/first", b"x")
    assert backend.get("data/ab/first", 0, 1) == b"x"
    shutil.rmtree(share)
    share.write_bytes(b"not a directory any more")
    with pytest.raises(DestinationError, match="cannot write data/ab/second"):
        backend.put("data/ab/second", b"y")
    with pytest.raises(DestinationError, match="cannot read"):
        backend.get("config")
    with pytest.raises(DestinationError):
        list(backend.list())
    share.unlink()
    # The directory this backend worked in is gone: a lost share, not "no such object" (which
    # would make a check report every pack missing) and not a directory to make again.
    with pytest.raises(DestinationError, match="the share was lost: the directory is gone"):
        backend.get("config")
    with pytest.raises(DestinationError, match="the share was lost"):
        backend.put("data/ab/third", b"z")
    assert not share.exists()
    fresh = open_backend(f"file://{share}/repo")
    with pytest.raises(NotFoundError):  # a fresh destination: nothing there yet
        fresh.get("config")
    with pytest.raises(DestinationError, match="is the share mounted"):
        list(fresh.list())
