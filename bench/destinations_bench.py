#!/usr/bin/env python3
"""Benchmark: backup and restore of the 1 GiB dataset to each backend, on loopback.

`file://`, S3 (SeaweedFS, started here) and SFTP (OpenSSH sshd, started here; needs root), with
restic over SFTP as the reference. Goal (remote destinations issue): S3 and SFTP within 1.5x of
the same run to `file://`.

    python bench/destinations_bench.py [--dataset bench/results/repo/pristine-1024-1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchlib import ensure_dataset, timed_cpu

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dataset", type=Path, default=ROOT / "bench" / "results" / "repo" / "pristine-1024-1"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("/dev/shm") if Path("/dev/shm").is_dir() else ROOT / "bench" / "results",
        help="Where the repositories and restores go (default: tmpfs, so the disk's writeback,"
        " which varies several-fold from run to run here, does not drown the transports).",
    )
    args = parser.parse_args()
    ensure_dataset(args.dataset, 1024, 1)  # the default one is shared with bench/repo_bench.py
    from tests.servers import (
        S3_KEY,
        S3_SECRET,
        AgentServer,
        S3Server,
        SSHServer,
        free_port,
        self_signed,
    )

    from sealbox.crypto import agekeys

    work = Path(tempfile.mkdtemp(prefix="sealbox-dest-bench-", dir=args.workdir))
    s3 = S3Server("", work / "seaweedfs", free_port())
    s3.endpoint = f"http://127.0.0.1:{s3.port}"
    (work / "seaweedfs").mkdir()
    ssh_dir = work / "sshd"
    ssh_dir.mkdir()
    ssh = SSHServer(ssh_dir, free_port(), ssh_dir / "client", ssh_dir / "known_hosts")
    (work / "agent").mkdir()
    cert, key = self_signed(work / "agent")
    agent = AgentServer(work / "agent" / "root", free_port(), cert, key)
    try:
        s3.start()
        ssh.start()
        agent.start()
        s3.bucket("bench")
        identity = agekeys.identity_from_secret(agekeys.new_secret())
        (work / "id.txt").write_text(identity + "\n")
        recipient = agekeys.recipient_of(identity)
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": S3_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET,
            "SEALBOX_SSH_KEY": str(ssh.key),
            "SEALBOX_SSH_KNOWN_HOSTS": str(ssh.known_hosts),
            "RESTIC_PASSWORD": "bench",
            "SEALBOX_STATE_DIR": str(work / "state"),
            "SEALBOX_AGENT_TOKEN": agent.token("bench"),
            "SEALBOX_AGENT_CA": str(cert),
        }
        targets = {
            "file": f"file://{work / 'file-repo'}",
            "s3": f"s3://bench/repo?endpoint={s3.endpoint}",
            "sftp": f"sftp://root@127.0.0.1:{ssh.port}{work / 'sftp-repo'}",
            "agent": f"{agent.base}/bench",
        }
        sealbox = [sys.executable, "-m", "sealbox", "repo"]
        rows = {}
        for name, url in targets.items():
            subprocess.run(
                [*sealbox, "init", url, "--recipient", recipient],
                check=True,
                env=env,
                stdout=subprocess.DEVNULL,
            )
            backup = _step([*sealbox, "backup", url, str(args.dataset)], env)
            target = work / f"restore-{name}"
            restore = _step(
                [
                    *sealbox,
                    "restore",
                    url,
                    "latest",
                    str(target),
                    "--identity",
                    str(work / "id.txt"),
                ],
                env,
            )
            shutil.rmtree(target)
            rows[name] = (backup, restore)
        restic_repo = f"sftp:root@127.0.0.1:{work / 'restic-repo'}"
        ssh_config = work / "ssh_config"
        ssh_config.write_text(
            f"Host 127.0.0.1\n  Port {ssh.port}\n  IdentityFile {ssh.key}\n"
            f"  UserKnownHostsFile {ssh.known_hosts}\n  StrictHostKeyChecking yes\n"
        )
        restic_env = {**env, "RESTIC_PASSWORD": "bench"}
        sftp_cmd = f"ssh -F {ssh_config} root@127.0.0.1 -s sftp"
        restic = ["restic", "-q", "-r", restic_repo, "-o", f"sftp.command={sftp_cmd}"]
        subprocess.run([*restic, "init"], check=True, env=restic_env)
        restic_backup = _step([*restic, "backup", str(args.dataset)], restic_env)
        restic_restore = _step(
            [*restic, "restore", "latest", "--target", str(work / "restore-restic")], restic_env
        )
        base_backup, base_restore = rows["file"]
        print(f"\nDestinations benchmark: {_size(args.dataset)} dataset, servers on loopback")
        print("wall = elapsed seconds; cpu = the client's own CPU seconds; srv = all other CPU")
        print("seconds meanwhile (sshd, SeaweedFS, the agent, the kernel), on the same 2 cores")
        print(
            f"{'destination':<20} {'backup':>7} {'x file':>6} {'cpu':>6} {'x file':>6} {'srv':>5}"
            f" {'restore':>8} {'x file':>6} {'cpu':>6} {'x file':>6} {'srv':>5}  wall goal <= 1.5"
        )
        rows["restic sftp (ref.)"] = (restic_backup, restic_restore)
        for name, (backup, restore) in rows.items():
            verdict = (
                "ok"
                if backup[0] <= 1.5 * base_backup[0] and restore[0] <= 1.5 * base_restore[0]
                else "MISSED"
            )
            label = name if name.startswith("restic") else f"sealbox {name}"
            print(
                f"{label:<20} {backup[0]:6.2f}s {backup[0] / base_backup[0]:6.2f}"
                f" {backup[1]:5.1f}s {backup[1] / base_backup[1]:6.2f} {backup[2]:4.1f}s"
                f" {restore[0]:7.2f}s {restore[0] / base_restore[0]:6.2f}"
                f" {restore[1]:5.1f}s {restore[1] / base_restore[1]:6.2f} {restore[2]:4.1f}s"
                f"  {verdict if name not in ('file',) and not name.startswith('restic') else ''}"
            )
        agent_peak = _peak_rss(agent.proc.pid) if agent.proc else 0
        print(f"agent peak memory: {agent_peak / 1024:.0f} MiB (goal < 200 MiB)")
    finally:
        s3.stop()
        ssh.stop()
        agent.stop()
        shutil.rmtree(work, ignore_errors=True)


def _step(argv: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """(wall, the command's CPU, everything else's CPU meanwhile) of one timed step. It starts
    with no dirty pages left by the previous step: otherwise the kernel's writeback of earlier
    steps lands on whichever run comes later."""
    subprocess.run(["sync"], check=True)
    before = _busy_cpu()
    wall, cpu = timed_cpu(argv, env=env, stdout=subprocess.DEVNULL)
    return wall, cpu, _busy_cpu() - before - cpu


def _busy_cpu() -> float:
    """CPU seconds the whole machine has been busy (all cores; /proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(f) for f in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def _size(path: Path) -> str:
    total = sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
    return f"{total / 2**30:.2f} GiB" if total >= 2**30 else f"{total / 2**20:.0f} MiB"


def _peak_rss(pid: int) -> int:
    """Peak resident memory (KiB) of a process and its children (uvicorn runs in one process)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    main()
