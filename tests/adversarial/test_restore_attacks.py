"""Restores of hostile snapshots and into hostile targets: nothing is written or changed outside
the target, privileged metadata only on request, and no failure is ever reported as success.

The hostile snapshots are made with the real code: trees encoded by ``encode_tree``, stored by the
backup engine's packer under a real data key, indexed and published like any backup's (what a
forger holding the appliance's writer key, or a compromised appliance, can do).
"""

from __future__ import annotations

import os
import random
import stat
import struct
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sealbox.errors import CorruptFileError
from sealbox.repo import format as fmt
from sealbox.repo.backup import run_backup
from sealbox.repo.engine import Engine, Progress
from sealbox.repo.repository import Snapshot
from sealbox.repo.restore import RestoreOptions, plan_restore, run_restore
from sealbox.repo.tree import decode_tree, encode_tree
from tests.conftest import IN_CI
from tests.e2e.test_recordings import rec  # noqa: F401 (a fixture)
from tests.e2e.test_system_cli import system  # noqa: F401 (a fixture)

MTIME = 1_600_000_000_000_000_000


def need_root(why: str) -> None:
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail(f"CI runs as root, but this test is not: {why}")
        pytest.skip(f"needs root: {why}")


class Forger:
    """Builds a snapshot from hand-made nodes with the real engine, packer and repository."""

    def __init__(self, env: Any) -> None:
        self.repo = env.writer()
        self.engine = Engine(self.repo, self.repo.load_index(), Progress())
        self.refs: set[bytes] = set()

    def node(self, name: str, kind: str, **fields: Any) -> dict[str, Any]:
        base = {"name": name, "type": kind, "mode": 0o644, "mtime_ns": MTIME}
        return {**base, "uid": os.geteuid(), "gid": os.getegid(), **fields}

    def file(self, name: str, *chunks: bytes, **fields: Any) -> dict[str, Any]:
        ids = [self.engine.store(fmt.BLOB_DATA, c) for c in chunks]
        self.refs.update(ids)
        size = sum(map(len, chunks))
        return self.node(name, "file", content=[i.hex() for i in ids], size=size, **fields)

    def dir(self, name: str, children: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
        fields.setdefault("mode", 0o755)
        return self.node(name, "dir", subtree=self.tree(children), **fields)

    def tree(self, nodes: list[dict[str, Any]]) -> str:
        blob = self.engine.store(fmt.BLOB_TREE, encode_tree(nodes))
        self.refs.add(blob)
        return blob.hex()

    def publish(self, root: list[dict[str, Any]]) -> Snapshot:
        tree = self.tree(root)
        self.engine.flush()
        self.repo.save_index(self.engine.index.subset(self.engine.new_packs))
        snapshot = Snapshot(
            id="",
            time=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            hostname="forged",
            paths=["/"],
            tree=tree,
            refs=self.repo.save_refs(self.refs),
            data_keys=[self.engine.data_key.key_id.hex()],
        )
        self.repo.save_snapshot(snapshot)
        return snapshot


def restore_cli(sealbox, env, target: Path, *extra: str):
    return sealbox(
        "repo", "--state-dir", env.state, "restore", env.url, "latest", target,
        "--identity", env.identity_file, *extra,
    )  # fmt: skip


def damage_blob(env, blob_hex: str) -> None:
    """Flip one bit inside a stored blob (its pack keeps its name: only this blob fails)."""
    _, reader = env.reader()
    pack, entry = reader.index.lookup(bytes.fromhex(blob_hex))
    path = Path(env.url.removeprefix("file://")) / "data" / pack[:2] / pack
    data = bytearray(path.read_bytes())
    data[entry.offset + 20] ^= 0x04
    path.write_bytes(bytes(data))


def test_duplicate_names_in_a_tree_are_refused_naming_the_directory_and_the_name():
    tree = encode_tree(
        [{"name": "x", "type": "socket"}, {"name": "x", "type": "symlink", "target": "/etc"}]
    )
    with pytest.raises(CorruptFileError, match=r"/srv/d: the tree lists 'x' twice"):
        decode_tree(tree, "/srv/d")
    with pytest.raises(CorruptFileError, match="unknown type"):
        decode_tree(encode_tree([{"name": "x", "type": "door"}]), "/srv")


def test_socket_then_symlink_of_one_name_cannot_chmod_a_victim(env, sealbox, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    victim.chmod(0o600)
    before = os.lstat(victim)
    forge = Forger(env)
    hostile = forge.dir(
        "d",
        [
            forge.node("x", "socket", mode=0o777),
            forge.node("x", "symlink", target=str(victim), mode=0o777),
        ],
    )
    forge.publish([hostile, forge.dir("ok", [forge.file("f", b"fine")])])
    out = tmp_path / "out"
    result = restore_cli(sealbox, env, out)
    assert result.code == 5, result.out + result.err
    assert "/d/" in result.out + result.err and "'x' twice" in result.out + result.err
    assert "verified" not in result.out.replace("were read back and verified", "")
    after = os.lstat(victim)
    assert (after.st_mode, after.st_mtime_ns, after.st_uid) == (
        before.st_mode,
        before.st_mtime_ns,
        before.st_uid,
    )
    assert victim.read_text() == "keep me"
    assert (out / "ok" / "f").read_bytes() == b"fine", "everything else is restored"
    assert not (out / "d" / "x").exists() and not (out / "d" / "x").is_symlink()


def test_a_symlink_planted_at_a_files_name_is_replaced_not_written_through(env, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    forge = Forger(env)
    snap = forge.publish([forge.dir("etc", [forge.file("passwd", b"restored\n", mode=0o640)])])
    out = tmp_path / "out"
    (out / "etc").mkdir(parents=True)
    (out / "etc" / "passwd").symlink_to(victim)
    repo, reader = env.reader()
    plan = plan_restore(repo, reader.index, reader, snap, out)
    result = run_restore(repo, reader.index, reader, plan, out)
    assert not result.failed and result.files == 1
    assert victim.read_text() == "keep me" and stat.S_IMODE(os.lstat(victim).st_mode) != 0o640
    restored = os.lstat(out / "etc" / "passwd")
    assert stat.S_ISREG(restored.st_mode) and stat.S_IMODE(restored.st_mode) == 0o640
    assert (out / "etc" / "passwd").read_bytes() == b"restored\n"


def test_symlinked_directories_planted_in_the_target_are_replaced(env, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    forge = Forger(env)
    inner = forge.dir("b", [forge.file("f", b"data"), forge.node("l", "symlink", target="f")])
    snap = forge.publish([forge.dir("a", [inner]), forge.dir("c", [forge.file("g", b"more")])])
    out = tmp_path / "out"
    (out / "a").mkdir(parents=True)
    (out / "a" / "b").symlink_to(outside)  # a symlink where a directory goes
    (out / "c").symlink_to(outside)  # and right below the target
    repo, reader = env.reader()
    result = run_restore(
        repo, reader.index, reader, plan_restore(repo, reader.index, reader, snap, out), out
    )
    assert not result.failed
    assert list(outside.iterdir()) == [], "nothing was written through a planted symlink"
    for directory in (out / "a" / "b", out / "c"):
        assert stat.S_ISDIR(os.lstat(directory).st_mode)
    assert (out / "a" / "b" / "f").read_bytes() == b"data"
    assert os.readlink(out / "a" / "b" / "l") == "f"
    assert stat.S_IMODE(os.lstat(out / "a" / "b").st_mode) == 0o755
    assert os.lstat(out / "a" / "b").st_mtime_ns == MTIME


def test_a_restore_to_the_filesystem_root_is_allowed(env, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("back in place")
    snap = run_backup(env.writer(), [src], state_dir=env.state).snapshot
    (src / "f").unlink()
    repo, reader = env.reader()
    root = Path("/")
    plan = plan_restore(repo, reader.index, reader, snap, root, [f"{src}/*"])
    assert {e.path for e in plan.entries} >= {str(src / "f").lstrip("/")}
    result = run_restore(repo, reader.index, reader, plan, root)
    assert not result.failed and result.files == 1
    assert (src / "f").read_text() == "back in place"


def test_setid_bits_are_stripped_by_default_and_kept_with_special(env, sealbox, tmp_path):
    forge = Forger(env)
    forge.publish([forge.file("su", b"#!/bin/sh\n", mode=0o6755), forge.dir("g", [], mode=0o2775)])
    plain = restore_cli(sealbox, env, tmp_path / "plain")
    assert plain.code == 0, plain.err
    assert stat.S_IMODE(os.lstat(tmp_path / "plain" / "su").st_mode) == 0o755
    assert stat.S_IMODE(os.lstat(tmp_path / "plain" / "g").st_mode) == 0o2775  # dirs keep setgid
    warnings = [line for line in plain.err.splitlines() if "not restored" in line]
    assert len(warnings) == 1 and "set-id bits of 1 file(s)" in warnings[0]
    assert "--special" in warnings[0]
    special = restore_cli(sealbox, env, tmp_path / "special", "--special")
    assert special.code == 0, special.err
    assert stat.S_IMODE(os.lstat(tmp_path / "special" / "su").st_mode) == 0o6755
    assert "not restored" not in special.err


def test_many_skipped_items_make_one_warning_line(env, sealbox, tmp_path):
    forge = Forger(env)
    forge.publish([forge.file(f"s{n}", b"x", mode=0o4755) for n in range(300)])
    result = restore_cli(sealbox, env, tmp_path / "out")
    assert result.code == 0, result.err
    assert [line for line in result.err.splitlines() if "not restored" in line] == [
        "warning: not restored: set-id bits of 300 file(s) (add --special)"
    ]


def test_device_nodes_are_skipped_by_default(env, sealbox, tmp_path):
    forge = Forger(env)
    null = os.makedev(1, 3)
    forge.publish([forge.node("null", "chardev", rdev=null, mode=0o666), forge.file("f", b"x")])
    plain = restore_cli(sealbox, env, tmp_path / "plain")
    assert plain.code == 0, plain.err
    assert not os.path.lexists(tmp_path / "plain" / "null")
    assert "1 device node(s)" in plain.err
    need_root("mknod of a device node")
    special = restore_cli(sealbox, env, tmp_path / "special", "--special")
    assert special.code == 0, special.err
    st = os.lstat(tmp_path / "special" / "null")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == null and stat.S_IMODE(st.st_mode) == 0o666


def test_fifos_are_restored_with_their_mode_and_time(env, tmp_path):
    forge = Forger(env)
    snap = forge.publish([forge.node("pipe", "fifo", mode=0o620)])
    out = tmp_path / "out"
    (out).mkdir()
    os.symlink(tmp_path / "elsewhere", out / "pipe")  # in the way: replaced
    repo, reader = env.reader()
    run_restore(
        repo, reader.index, reader, plan_restore(repo, reader.index, reader, snap, out), out
    )
    st = os.lstat(out / "pipe")
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o620
    assert st.st_mtime_ns == MTIME
    assert not os.path.lexists(tmp_path / "elsewhere")


def test_owners_are_left_alone_by_default_and_restored_with_owners(env, sealbox, tmp_path):
    need_root("chown to another user")
    forge = Forger(env)
    foreign = {"uid": 1234, "gid": 2345}
    forge.publish(
        [
            forge.dir("d", [forge.file("f", b"x", **foreign)], **foreign),
            forge.node("l", "symlink", target="d/f", **foreign),
        ]
    )
    plain = restore_cli(sealbox, env, tmp_path / "plain")
    assert plain.code == 0, plain.err
    for name in ("d", "d/f", "l"):
        st = os.lstat(tmp_path / "plain" / name)
        assert (st.st_uid, st.st_gid) == (0, 0), name
    assert "owners of 3 entries" in plain.err and "--owners" in plain.err
    owned = restore_cli(sealbox, env, tmp_path / "owned", "--owners")
    assert owned.code == 0, owned.err
    for name in ("d", "d/f", "l"):
        st = os.lstat(tmp_path / "owned" / name)
        assert (st.st_uid, st.st_gid) == (1234, 2345), name


def test_owners_option_needs_root(env, tmp_path):
    """--owners as a user who is not root is refused before anything is written. As root (CI),
    the restore runs in a child process that really is user nobody."""
    forge = Forger(env)
    forge.publish([forge.file("f", b"x")])
    if os.geteuid() != 0:
        repo, reader = env.reader()
        plan = plan_restore(repo, reader.index, reader, repo.find_snapshot("latest"), tmp_path)
        from sealbox.errors import PolicyError

        with pytest.raises(PolicyError, match="needs root"):
            run_restore(
                repo,
                reader.index,
                reader,
                plan,
                tmp_path / "out",
                options=RestoreOptions(owners=True),
            )
        return
    import shutil
    import subprocess
    import sys
    import tempfile

    share = Path(tempfile.mkdtemp(prefix="sealbox-nobody-"))
    try:
        for part in ("repo", "state", "identity.txt"):
            source = tmp_path / part
            copy = share / part
            (shutil.copytree if source.is_dir() else shutil.copy)(source, copy)
        shutil.rmtree(share / "state" / "repos")  # writer keys stay with root
        os.chmod(share / "state" / "keystore" / "signing_key", 0o600)
        for path in [share, *share.rglob("*")]:
            os.chmod(path, 0o755 if path.is_dir() else (path.stat().st_mode | 0o444))
        os.chmod(share / "state" / "keystore" / "signing_key", 0o600)  # unreadable to nobody
        out = share / "out"
        done = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
             sys.executable, "-m", "sealbox", "repo", "--state-dir", str(share / "state"),
             "restore", f"file://{share / 'repo'}", "latest", str(out),
             "--identity", str(share / "identity.txt"), "--owners"],
            capture_output=True, text=True, check=False, timeout=60,
            cwd=share,
        )  # fmt: skip
        assert done.returncode == 9, (done.returncode, done.stderr)
        assert "needs root" in done.stderr and "Traceback" not in done.stderr
        assert not out.exists() or not any(out.rglob("f"))
    finally:
        shutil.rmtree(share, ignore_errors=True)


def test_file_capabilities_need_special_and_user_xattrs_do_not(env, sealbox, tmp_path):
    need_root("setting security.capability")
    import base64

    cap = struct.pack("<IIIII", 0x02000000, 1 << 10, 0, 0, 0)  # v2: cap_net_bind_service=p
    xattrs = {
        "security.capability": base64.b64encode(cap).decode(),
        "user.note": base64.b64encode(b"kept").decode(),
    }
    forge = Forger(env)
    forge.publish([forge.file("bin", b"\x7fELF", mode=0o755, xattrs=xattrs)])
    plain = restore_cli(sealbox, env, tmp_path / "plain")
    assert plain.code == 0, plain.err
    names = os.listxattr(tmp_path / "plain" / "bin", follow_symlinks=False)
    assert "security.capability" not in names and "user.note" in names
    assert "1 file capability attribute(s)" in plain.err
    special = restore_cli(sealbox, env, tmp_path / "special", "--special")
    assert special.code == 0, special.err
    assert os.getxattr(tmp_path / "special" / "bin", "security.capability") == cap


def test_damaged_data_keys_fail_the_restore_naming_the_key(env, sealbox, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("data")
    run_backup(env.writer(), [src], state_dir=env.state)
    keys = list((Path(env.url.removeprefix("file://")) / "datakeys").iterdir())
    for key in keys:
        data = bytearray(key.read_bytes())
        data[len(data) // 2] ^= 0x01
        key.write_bytes(bytes(data))
    result = restore_cli(sealbox, env, tmp_path / "out")
    assert result.code == 5, result.out + result.err
    assert f"datakeys/{keys[0].name}" in result.err
    assert "root directory" in result.err
    assert "verified" not in result.out and "restored" not in result.out


def test_a_damaged_subtree_fails_the_restore_and_the_rest_is_restored(env, sealbox, tmp_path):
    forge = Forger(env)
    bad = forge.dir("bad", [forge.file("lost", b"gone")])
    forge.publish([bad, forge.dir("good", [forge.file("a", b"kept")])])
    damage_blob(env, bad["subtree"])
    out = tmp_path / "out"
    result = restore_cli(sealbox, env, out)
    assert result.code == 5, result.out + result.err
    assert "/bad/: directory listing unreadable" in result.out + result.err
    assert (out / "good" / "a").read_bytes() == b"kept"
    assert "restored 1 of 1 files" in result.out and "FAILED" in result.out


def test_a_file_that_fails_halfway_is_not_left_on_disk(env, sealbox, tmp_path):
    forge = Forger(env)
    first, second = random.Random(1).randbytes(300_000), random.Random(2).randbytes(300_000)
    broken = forge.file("broken.bin", first, second)
    forge.publish([forge.dir("d", [broken, forge.file("fine", b"ok")])])
    damage_blob(env, broken["content"][1])  # the first chunk is good: it gets written
    out = tmp_path / "out"
    (out / "d").mkdir(parents=True)
    (out / "d" / "broken.bin").write_bytes(b"an older copy")  # replaced or removed, not kept
    result = restore_cli(sealbox, env, out, "--json")
    assert result.code == 5, result.err
    assert "/d/broken.bin" in result.err
    assert sorted(os.listdir(out / "d")) == ["fine"], "no partial file under any name"
    assert (out / "d" / "fine").read_bytes() == b"ok"


def test_a_socket_in_the_snapshot_is_counted_not_created(env, sealbox, tmp_path):
    forge = Forger(env)
    forge.publish([forge.node("sock", "socket"), forge.file("f", b"x")])
    result = restore_cli(sealbox, env, tmp_path / "out")
    assert result.code == 0 and "1 socket(s)" in result.err
    assert not os.path.lexists(tmp_path / "out" / "sock")


def _recording(forge: Forger, path: str, data: bytes, digest: str | None = None) -> dict[str, Any]:
    import blake3

    blob = forge.engine.store(fmt.BLOB_DATA, data)
    return {
        "path": path,
        "blobs": [blob.hex()],
        "digest": digest or blake3.blake3(data).hexdigest(),
        "size": len(data),
        "mtime_ns": MTIME,
    }


def test_recordings_restore_never_follows_a_symlinked_directory_in_the_target(env, tmp_path):
    from sealbox.recordings.restore import restore

    outside = tmp_path / "outside"
    outside.mkdir()
    forge = Forger(env)
    entries = [_recording(forge, "2026/11/24/a.rec", b"session a")]
    forge.publish([])
    out = tmp_path / "out"
    (out / "2026").mkdir(parents=True)
    (out / "2026" / "11").symlink_to(outside)
    _, reader = env.reader()
    result = restore(reader, entries, out)
    assert result.files == 1 and not result.failed
    assert list(outside.iterdir()) == []
    assert stat.S_ISDIR(os.lstat(out / "2026" / "11").st_mode)
    assert (out / "2026" / "11" / "24" / "a.rec").read_bytes() == b"session a"
    assert os.lstat(out / "2026" / "11" / "24" / "a.rec").st_mtime_ns == MTIME


def test_a_recording_that_fails_its_digest_leaves_nothing_behind(env, tmp_path):
    from sealbox.recordings.restore import restore

    forge = Forger(env)
    entries = [
        _recording(forge, "d/bad.rec", b"altered", digest="00" * 32),
        _recording(forge, "d/good.rec", b"fine"),
    ]
    forge.publish([])
    out = tmp_path / "out"
    (out / "d").mkdir(parents=True)
    (out / "d" / "bad.rec").symlink_to(tmp_path / "victim")  # in the way: not followed
    _, reader = env.reader()
    result = restore(reader, entries, out)
    assert result.files == 1 and len(result.failed) == 1 and "d/bad.rec" in result.failed[0]
    assert sorted(os.listdir(out / "d")) == ["bad.rec", "good.rec"]
    assert os.path.islink(out / "d" / "bad.rec"), "the old entry is left as it was"
    assert not os.path.lexists(tmp_path / "victim")


def test_restore_recordings_exits_non_zero_when_any_recording_fails(rec, sealbox, tmp_path):  # noqa: F811
    first = sealbox("backup", "recordings", "--config", rec.config, "--json")
    assert first.code == 0, first.err
    packs = [p for p in (rec.remote / "repo" / "data").rglob("*") if p.is_file()]
    victim = max(packs, key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[100] ^= 1  # inside the first blob of the biggest pack: one recording
    victim.write_bytes(bytes(data))
    out = tmp_path / "out"
    result = sealbox(
        "restore", "recordings", "--since", "2000-01-01T00:00:00", "--target", out,
        *rec.share_args(1, 2, 3), "--config", rec.config,
    )  # fmt: skip
    assert result.code == 5, result.out + result.err
    assert "FAILED" in result.out and "each matched its recorded digest" not in result.out
    restored = [p for p in out.rglob("*") if p.is_file()]
    assert 0 < len(restored) < 6
    assert all(not p.name.startswith(".sealbox-partial") for p in restored)


def test_more_directories_than_cached_descriptors_restore_exactly(env, tmp_path, monkeypatch):
    from sealbox.repo import restore as restore_module

    monkeypatch.setattr(restore_module, "DIR_FDS", 3)  # evictions and reopenings all the way
    forge = Forger(env)
    tops = []
    for a in range(6):
        subs = [
            forge.dir(f"s{b}", [forge.file("f", f"{a}/{b}".encode())], mode=0o750 + b)
            for b in range(4)
        ]
        tops.append(forge.dir(f"t{a}", subs, mode=0o700 + a))
    snap = forge.publish(tops)
    out = tmp_path / "out"
    (out / "t2").mkdir(parents=True)
    (out / "t2" / "s1").write_text("a file where a directory goes")
    repo, reader = env.reader()
    plan = plan_restore(repo, reader.index, reader, snap, out)
    fds_before = len(os.listdir("/proc/self/fd"))
    result = run_restore(repo, reader.index, reader, plan, out)
    assert not result.failed and result.files == 24 and result.dirs == 30
    assert len(os.listdir("/proc/self/fd")) <= fds_before, "every descriptor was closed"
    for a in range(6):
        top = os.lstat(out / f"t{a}")
        assert stat.S_IMODE(top.st_mode) == 0o700 + a and top.st_mtime_ns == MTIME
        for b in range(4):
            sub = os.lstat(out / f"t{a}" / f"s{b}")
            assert stat.S_ISDIR(sub.st_mode) and stat.S_IMODE(sub.st_mode) == 0o750 + b
            assert sub.st_mtime_ns == MTIME
            assert (out / f"t{a}" / f"s{b}" / "f").read_bytes() == f"{a}/{b}".encode()


def test_restore_system_strips_set_id_bits_unless_special(system, sealbox, tmp_path):  # noqa: F811
    tool = next((system.root / "appliance").rglob("policy-003.yaml"))
    tool.chmod(0o4755)
    backup = sealbox("backup", "system", "--config", system.config, "--json")
    assert backup.code == 0, backup.err
    args = ["--include", "*/policy-003.yaml", *system.share_args(1, 2, 3)]
    for target, extra, mode in (("plain", (), 0o755), ("special", ("--special",), 0o4755)):
        result = sealbox(
            "restore", "system", "latest", "--target", tmp_path / target, *args, *extra,
            "--config", system.config,
        )  # fmt: skip
        assert result.code == 0, result.err
        copy = next((tmp_path / target).rglob("policy-003.yaml"))
        assert stat.S_IMODE(os.lstat(copy).st_mode) == mode, target
        assert ("set-id bits of 1 file(s)" in result.err) == (not extra)
