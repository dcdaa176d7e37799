#!/usr/bin/env python3
"""Benchmark: the break-the-glass secrets backup and opening it, at 100,000 items.

Goals (issue "Foundation ... secrets backup"): `sealbox backup secrets` and
`sealbox breakglass open ... search` each under 2 s on the 2-core CI machine, peak memory under
300 MB. Each command runs as its own process, as an operator would run it; wall time is the median
of --runs, memory is the child's peak RSS (wait4). As a reference floor, the same document is
encrypted by the standard `age` CLI (which Sealbox cannot beat: it must also export and sign).

    python bench/secrets_bench.py [--items 100000] [--runs 3] [--workdir bench/results/secrets]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sealbox.demo import vault
from sealbox.demo.run import _config_text
from sealbox.items import ITEM_TYPES

SEALBOX = [sys.executable, "-m", "sealbox"]


def measure(
    argv: list[str], stdin: int | None = None, stdout: int | None = None
) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one child process; raises if it fails."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdin=stdin, stdout=stdout if stdout is not None else subprocess.DEVNULL
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark command failed ({proc.returncode}): {' '.join(argv)}")
    return wall, usage.ru_maxrss / 1024


def runs(argv: list[str], count: int, **kw) -> tuple[float, float]:
    results = [measure(argv, **kw) for _ in range(count)]
    return statistics.median(r[0] for r in results), max(r[1] for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("bench/results/secrets"))
    args = parser.parse_args()
    root = args.workdir.absolute()
    per_type = -(-args.items // len(ITEM_TYPES))
    marker = root / f".vault-{per_type}"
    if not marker.exists():
        shutil.rmtree(root, ignore_errors=True)
        print(f"building a vault of {per_type * len(ITEM_TYPES)} items (once) ...", flush=True)
        vault.create_vault(root / "appliance" / "vault.db", per_type=per_type)
        (root / "remote").mkdir(parents=True)
        (root / "sealbox.toml").write_text(
            _config_text(root).replace("keep_last = 10", "keep_last = 3")
        )
        subprocess.run(
            [
                *SEALBOX,
                "keys",
                "ceremony",
                "--shares",
                "5",
                "--threshold",
                "3",
                "--out",
                str(root / "custodians"),
                "--config",
                str(root / "sealbox.toml"),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        marker.touch()
    config = ["--config", str(root / "sealbox.toml")]
    backup_wall, backup_rss = runs([*SEALBOX, "backup", "secrets", *config], args.runs)
    newest = sorted((root / "remote").glob("secrets-*.age"))[-1]
    shares: list[str] = []
    for n in (1, 3, 5):
        shares += ["--share", str(root / "custodians" / f"share-{n:02d}.txt")]
    search_wall, search_rss = runs(
        [*SEALBOX, "breakglass", "open", str(newest), *shares, "search", "payments-par-07"],
        args.runs,
    )

    rows = [
        ("backup secrets", backup_wall, backup_rss, 2.0, 300),
        ("breakglass open + search", search_wall, search_rss, 2.0, 300),
    ]
    age = shutil.which("age")
    identity = root / "identity.txt"
    if age:
        identity.unlink(missing_ok=True)
        subprocess.run(
            [*SEALBOX, "keys", "combine", *shares, "--out", str(identity)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        plain = subprocess.run(
            [age, "-d", "-i", str(identity), str(newest)], check=True, capture_output=True
        ).stdout
        recipient = identity.read_text().split("public key: ")[1].split()[0]
        read_fd, write_fd = os.pipe()
        # The reference: the age CLI encrypting the same plaintext (from a pipe, no disk).
        started = time.perf_counter()
        proc = subprocess.Popen([age, "-r", recipient, "-o", os.devnull], stdin=read_fd)
        os.close(read_fd)
        os.write(write_fd, plain) if len(plain) < 65536 else _feed(write_fd, plain)
        os.close(write_fd)
        proc.wait()
        age_wall = time.perf_counter() - started
        identity.unlink()
        rows.append(
            (
                f"age CLI encrypt only ({len(plain) / 2**20:.0f} MiB JSON)",
                age_wall,
                float("nan"),
                None,
                None,
            )
        )
    print(f"\nSecrets benchmark: {per_type * len(ITEM_TYPES):,} items, median of {args.runs} runs")
    print(f"{'step':<44} {'wall s':>8} {'peak MiB':>9} {'goal':>16}  verdict")
    for name, wall, rss, goal_s, goal_mb in rows:
        goal = f"<{goal_s:g} s, <{goal_mb} MiB" if goal_s else "reference"
        verdict = "" if goal_s is None else ("ok" if wall < goal_s and rss < goal_mb else "MISSED")
        print(f"{name:<44} {wall:>8.2f} {rss:>9.0f} {goal:>16}  {verdict}")
    if age:
        print(f"ratio backup / age-encrypt-only: {backup_wall / rows[-1][1]:.1f}x")


def _feed(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view[: 1 << 20]) :]


if __name__ == "__main__":
    main()
