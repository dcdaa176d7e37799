"""`sealbox probe` at mounted destinations: the write test (exclusive create refused on a taken
name, a replace that leaves exactly the new bytes, a read past the client's cache) passes on
honest mounts (tmpfs, ext4, sshfs), and the mount options that make fsync promise less than it
should are named (ext4 mounted with nobarrier, a loop device of the test's own)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import make_appliance
from tests.mounts import LiarMount, SambaShare, SSHFSShare, mount_ext4, mount_tmpfs, umount


def _probe(sealbox, system, url: str) -> dict:
    """Probe ``url`` (made first: the probe never makes a destination's directory)."""
    path = Path(url.removeprefix("file://"))
    if not path.exists():
        path.mkdir()
    text = system.config.read_text()
    text = text.replace(f'url = "file://{system.root / "remote"}"', f'url = "{url}"')
    system.config.write_text(text)
    result = sealbox("probe", "--json", "--config", system.config)
    (found,) = json.loads(result.out)
    assert (result.code == 0) == found["ok"], result.err
    return found


@pytest.fixture
def system(tmp_path, sealbox):
    return make_appliance(tmp_path / "pam", sealbox)


def test_an_honest_tmpfs_passes_the_write_test_without_warnings(tmp_path, sealbox, system):
    mount_tmpfs(tmp_path / "share", "4m")
    try:
        found = _probe(sealbox, system, f"file://{tmp_path / 'share'}/nas")
        assert found["ok"] and found["filesystem"] == "tmpfs" and found["warnings"] == []
        assert [p.name for p in (tmp_path / "share" / "nas" / "probes").iterdir()] == []
    finally:
        umount(tmp_path / "share")


@pytest.mark.parametrize("options", ["nobarrier", "barrier=0"])
def test_an_ext4_mount_without_write_barriers_is_named(tmp_path, sealbox, system, options):
    share, image = tmp_path / "share", tmp_path / "disk.img"
    mount_ext4(image, share, options)
    try:
        found = _probe(sealbox, system, f"file://{share}/nas")
        assert found["ok"] and found["filesystem"] == "ext4"
        assert len(found["warnings"]) == 1 and "write barriers off" in found["warnings"][0]
        text = sealbox("probe", "--config", system.config)
        assert "warning:" in text.out and "nobarrier" in text.out
    finally:
        umount(share)
    subprocess.run(["sync"], check=False)
    mount_ext4(image, share, "barrier")  # the same disk, barriers on: nothing to say
    try:
        found = _probe(sealbox, system, f"file://{share}/nas")
        assert found["ok"] and found["warnings"] == []
    finally:
        umount(share)


def test_sshfs_passes_the_write_test_and_a_dead_mount_is_unreachable(tmp_path, sealbox, system):
    (tmp_path / "mounts").mkdir()
    share = SSHFSShare(tmp_path / "mounts")
    share.start_server()
    share.mount_share()
    try:
        found = _probe(sealbox, system, f"file://{share.mount}/nas")
        assert found["ok"] and found["filesystem"] == "fuse.sshfs" and found["warnings"] == []
        share.kill_client()
        found = _probe(sealbox, system, f"file://{share.mount}/nas")
        assert not found["ok"] and "the share was lost" in found["error"]
        assert "Transport endpoint is not connected" in found["error"]
    finally:
        share.close()


@pytest.mark.parametrize(
    ("mode", "said"),
    [
        ("torn-rename", "a replaced canary reads back other bytes than the new ones"),
        ("drop-writes", "the canary read past this client's cache differs from what was written"),
    ],
)
def test_a_share_that_lies_about_writes_fails_the_probe(tmp_path, sealbox, system, mode, said):
    """tests/liarfs.py, a FUSE filesystem the test mounts: a rename that keeps half the bytes,
    and a share that stores only the first 4 KiB of a file while the client's cache shows all."""
    liar = LiarMount(tmp_path, mode)
    try:
        found = _probe(sealbox, system, f"file://{liar.mount}/nas")
        assert not found["ok"], found
        assert said in found["error"], found["error"]
    finally:
        liar.close()


def test_a_samba_share_through_smbnetfs_is_refused_for_want_of_hard_links(
    tmp_path, sealbox, system
):
    (tmp_path / "samba").mkdir()
    samba = SambaShare(tmp_path / "samba")
    samba.start_server()
    try:
        samba.mount_share()
        found = _probe(sealbox, system, f"file://{samba.share}/sealbox")
        assert not found["ok"] and "does not support hard links" in found["error"], found
        assert "mount it with the kernel's CIFS or NFS client" in found["error"]
    finally:
        samba.close()
