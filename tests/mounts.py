"""Real network mounts for the vanishing-share tests: sshfs (FUSE) over an sshd of the test's own,
which a test can kill and start again, and kernel filesystems it can unmount, remount read-only
or fill (tmpfs).

Under CI=true a mount that cannot be made fails the test instead of skipping it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.servers import SSHServer, free_port


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children first found, then theirs), from /proc."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids = [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            continue
        for kid in kids:
            found += [kid, *descendants(kid)]
    return found


def mounted(path: Path) -> str | None:
    """The filesystem type mounted exactly at ``path``, if any."""
    target = os.path.realpath(path)
    kind = None
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if left.split()[4].replace("\\040", " ") == target:
            kind = right.split()[0]
    return kind


def _wait(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class SSHFSShare:
    """``served`` (a directory of this machine) exported by an sshd of its own and mounted at
    ``mount`` with sshfs. ``kill_server`` kills that sshd and every session process it forked
    (by their ids, found below the listener); ``start_server`` starts it again on the same port
    and host key, and sshfs (``reconnect``) reconnects on its next request."""

    def __init__(self, directory: Path) -> None:
        if os.geteuid() != 0:
            _unavailable("sshfs mounts need root here")
        if not os.path.exists("/dev/fuse"):
            _unavailable("no /dev/fuse in this container: FUSE mounts are impossible")
        if shutil.which("sshfs") is None:
            _unavailable("sshfs is not installed (scripts/install-tools.sh installs it)")
        self.served = directory / "served"
        self.mount = directory / "mnt"
        self.served.mkdir()
        self.mount.mkdir()
        keys = directory / "sshd"
        keys.mkdir()
        self.server = SSHServer(keys, free_port(), keys / "client_ed25519", keys / "known_hosts")
        self.client: subprocess.Popen[bytes] | None = None

    def start_server(self) -> None:
        self.server.start()

    def kill_server(self) -> None:
        proc = self.server.proc
        assert proc is not None
        for pid in [*descendants(proc.pid), proc.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        proc.wait()

    def mount_share(self, reconnect: bool = True) -> None:
        """Mount in the foreground process sshfs (``-f``), so that it is ours to kill."""
        options = [
            f"IdentityFile={self.server.key}",
            f"UserKnownHostsFile={self.server.known_hosts}",
            "StrictHostKeyChecking=yes",
            "ServerAliveInterval=1",
            "ServerAliveCountMax=3",
        ]
        if reconnect:
            options.append("reconnect")
        args = ["sshfs", "-f", "-p", str(self.server.port)]
        for option in options:
            args += ["-o", option]
        args += [f"root@127.0.0.1:{self.served}", str(self.mount)]
        self.client = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )

        def up() -> bool:
            if self.client is not None and self.client.poll() is not None:
                err = self.client.stderr.read().decode() if self.client.stderr else ""
                _unavailable(f"sshfs could not mount: {err.strip()}")
            return mounted(self.mount) == "fuse.sshfs"

        _wait(up, 20, "the sshfs mount")

    def kill_client(self) -> None:
        """The FUSE daemon dies without unmounting: every access is ENOTCONN until unmounted."""
        assert self.client is not None
        os.kill(self.client.pid, 9)
        self.client.wait()

    def unmount(self) -> None:
        if mounted(self.mount):
            subprocess.run(["umount", "-l", str(self.mount)], check=False, capture_output=True)
        if self.client is not None and self.client.poll() is None:
            os.kill(self.client.pid, 9)
            self.client.wait()
        self.client = None

    def close(self) -> None:
        self.unmount()
        proc = self.server.proc
        if proc is not None and proc.poll() is None:
            self.kill_server()


def mount_tmpfs(path: Path, size: str) -> None:
    """A kernel tmpfs of ``size`` at ``path`` (root; required under CI)."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        _unavailable(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")


def remount(path: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True)


def umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def mount_ext4(image: Path, path: Path, options: str, size_mib: int = 16) -> None:
    """A loop-mounted ext4 of ``size_mib`` at ``path`` (root; required under CI)."""
    if not image.exists():
        with image.open("wb") as handle:
            handle.truncate(size_mib << 20)
        made = subprocess.run(["mkfs.ext4", "-q", str(image)], capture_output=True, check=False)
        if made.returncode != 0:
            _unavailable(f"mkfs.ext4 failed: {made.stderr.decode().strip()}")
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-o", f"loop,{options}", str(image), str(path)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        _unavailable(f"cannot loop-mount an ext4 image: {done.stderr.decode().strip()}")


class LiarMount:
    """tests/liarfs.py mounted at ``mount`` over ``backing``, in MODE (its docstring)."""

    def __init__(self, directory: Path, mode: str) -> None:
        if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
            _unavailable("a FUSE mount needs root and /dev/fuse")
        try:
            import mfusepy  # noqa: F401
        except (ImportError, OSError) as exc:  # OSError: no libfuse3 (Debian fuse3)
            _unavailable(f"mfusepy with libfuse 3 is needed: {exc}")
        self.backing, self.mount = directory / "backing", directory / "liar"
        self.backing.mkdir()
        self.mount.mkdir()
        root = Path(__file__).resolve().parent.parent
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.liarfs", mode, str(self.backing), str(self.mount)],
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )

        def up() -> bool:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                _unavailable(f"liarfs could not mount: {err.strip()[-500:]}")
            return mounted(self.mount) == "fuse"

        _wait(up, 20, "the liarfs mount")

    def close(self) -> None:
        umount(self.mount)
        if self.proc.poll() is None:
            os.kill(self.proc.pid, 9)
        self.proc.wait()


class SambaShare:
    """A Samba share: smbd of the test's own on 127.0.0.1:445 (libsmbclient, which smbnetfs
    uses, reaches no other port) serving ``served``, mounted at ``mount`` by smbnetfs (FUSE; this
    machine's kernel has no CIFS client). The share is ``share`` below the mount point.
    ``kill_server`` kills smbd and what it forked, by their ids; ``start_server`` starts it
    again, and smbnetfs reconnects on its next request."""

    def __init__(self, directory: Path) -> None:
        for tool in ("/usr/sbin/smbd", "/usr/bin/smbnetfs"):
            if not os.path.exists(tool):
                _unavailable(f"{tool} is not installed (scripts/install-tools.sh installs it)")
        if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
            _unavailable("smbnetfs needs root and /dev/fuse here")
        import socket

        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", 445)) == 0:
                _unavailable("127.0.0.1:445 is taken (another smbd?)")
        self.dir = directory
        self.served, self.mount = directory / "served", directory / "smbmnt"
        for sub in (
            "served",
            "smbmnt",
            "priv",
            "lock",
            "state",
            "cache",
            "pid",
            "log",
            "home/.smb",
        ):
            (directory / sub).mkdir(parents=True)
        d = directory
        (d / "smb.conf").write_text(
            "[global]\n  smb ports = 445\n  interfaces = 127.0.0.1\n  bind interfaces only = yes\n"
            f"  private dir = {d / 'priv'}\n  lock directory = {d / 'lock'}\n"
            f"  state directory = {d / 'state'}\n  cache directory = {d / 'cache'}\n"
            f"  pid directory = {d / 'pid'}\n  log file = {d / 'log'}/%m.log\n"
            "  map to guest = Bad User\n  server role = standalone server\n"
            "  load printers = no\n  disable spoolss = yes\n  strict sync = yes\n"
            f"[nas]\n  path = {self.served}\n  read only = no\n  guest ok = yes\n"
            "  force user = root\n"
        )
        (d / "home/.smb/smb.conf").write_text("[global]\n  client min protocol = SMB2\n")
        (d / "home/.smb/smbnetfs.conf").write_text(
            'auth "guest" ""\nshow_hidden_hosts "true"\nhost 127.0.0.1 visible=true\n'
        )
        for name in ("smb.conf", "smbnetfs.conf"):
            (d / "home/.smb" / name).chmod(0o600)
        self.share = self.mount / "127.0.0.1" / "nas"
        self.server: subprocess.Popen[bytes] | None = None
        self.client: subprocess.Popen[bytes] | None = None

    def start_server(self) -> None:
        self.server = subprocess.Popen(
            [
                "/usr/sbin/smbd",
                "--foreground",
                "--no-process-group",
                "-s",
                str(self.dir / "smb.conf"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        import socket

        def listening() -> bool:
            assert self.server is not None and self.server.poll() is None, "smbd exited"
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", 445)) == 0

        _wait(listening, 20, "smbd")

    def kill_server(self) -> None:
        assert self.server is not None
        for pid in [*descendants(self.server.pid), self.server.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        self.server.wait()

    def mount_share(self) -> None:
        env = {**os.environ, "HOME": str(self.dir / "home")}
        self.client = subprocess.Popen(
            ["smbnetfs", "-f", str(self.mount)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait(lambda: mounted(self.mount) == "fuse.smbnetfs", 20, "the smbnetfs mount")
        _wait(self.share.is_dir, 20, "the share through smbnetfs")

    def close(self) -> None:
        umount(self.mount)
        for proc in (self.client, self.server):
            if proc is not None and proc.poll() is None:
                for pid in [*descendants(proc.pid), proc.pid]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, 9)
                proc.wait()
