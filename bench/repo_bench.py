#!/usr/bin/env python3
"""Benchmark: Sealbox's repository against restic and borg, side by side, on the same data.

Steps (each tool in turn, warm page cache, one process per step as a user would run it):
initial backup of a 1 GiB PAM-like dataset (../shared/bench/make_dataset.py), a no-change backup,
one day of change (`make_dataset.py --mutate`) and an incremental backup, then a restore of the
latest snapshot. Prints wall time and peak RSS (wait4) per step, repository sizes, and the
Sealbox/restic ratios with the goals of the repository-engine issue.

    python bench/repo_bench.py [--size-mb 1024] [--workdir bench/results/repo] [--dataset-tool PATH]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchlib import ensure_dataset

ROOT = Path(__file__).resolve().parents[1]
GOALS = {"initial backup": 0.5, "no-change backup": 0.5, "incremental backup": 0.6, "restore": 0.8}


def run(
    argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one command; stops the benchmark if it fails."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise SystemExit(f"failed ({code}): {' '.join(argv)}\n{err}")
    return wall, usage.ru_maxrss / 1024


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "results" / "repo")
    parser.add_argument(
        "--dataset-tool", type=Path, default=ROOT.parent / "shared" / "bench" / "make_dataset.py"
    )
    args = parser.parse_args()
    for tool in ("restic", "borg"):
        if shutil.which(tool) is None:
            raise SystemExit(
                f"{tool} is not installed (Debian package {tool if tool == 'restic' else 'borgbackup'})"
            )
    work = args.workdir.absolute()
    pristine = ensure_dataset(
        work / f"pristine-{args.size_mb}-{args.seed}", args.size_mb, args.seed, args.dataset_tool
    )
    run_dir = work / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    data = run_dir / "data"
    subprocess.run(["cp", "-a", str(pristine), str(data)], check=True)
    # Flush the copy to disk first: otherwise the first tool to fsync pays for writing it back.
    subprocess.run(["sync"], check=True)

    env = {
        **os.environ,
        "RESTIC_PASSWORD": "bench",
        "BORG_PASSPHRASE": "bench",
        "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
        "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
        "SEALBOX_STATE_DIR": str(run_dir / "sealbox-state"),
        "BORG_BASE_DIR": str(run_dir / "borg-base"),
    }
    sealbox = [sys.executable, "-m", "sealbox"]
    identity = run_dir / "identity.txt"
    subprocess.run(
        ["age-keygen", "-o", str(identity)], check=True, capture_output=True
    ) if shutil.which("age-keygen") else identity.write_text(_identity())
    recipient = next(
        line.split(": ")[1] for line in identity.read_text().splitlines() if "public key" in line
    )
    repos = {
        "sealbox": run_dir / "sealbox-repo",
        "restic": run_dir / "restic-repo",
        "borg": run_dir / "borg-repo",
    }
    subprocess.run(
        [*sealbox, "repo", "init", str(repos["sealbox"]), "--recipient", recipient],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    subprocess.run(["restic", "init", "-q", "-r", str(repos["restic"])], check=True, env=env)
    subprocess.run(
        ["borg", "init", "-e", "repokey-blake2", str(repos["borg"])], check=True, env=env
    )

    counter = iter(range(100))

    def backup(tool: str) -> list[str]:
        if tool == "sealbox":
            return [*sealbox, "repo", "backup", str(repos["sealbox"]), str(data)]
        if tool == "restic":
            return ["restic", "-q", "-r", str(repos["restic"]), "backup", str(data)]
        return ["borg", "create", f"{repos['borg']}::a{next(counter)}", str(data)]

    results: dict[str, dict[str, tuple[float, float]]] = {}
    tools = ("sealbox", "restic", "borg")
    for step in ("initial backup", "no-change backup"):
        results[step] = {t: run(backup(t), env=env) for t in tools}
    subprocess.run(
        [sys.executable, str(args.dataset_tool), "--mutate", str(data)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    results["incremental backup"] = {t: run(backup(t), env=env) for t in tools}
    sizes = {t: du(repos[t]) for t in tools}
    restore: dict[str, tuple[float, float]] = {}
    for tool in tools:
        target = run_dir / f"restore-{tool}"
        target.mkdir()
        if tool == "sealbox":
            argv = [
                *sealbox,
                "repo",
                "restore",
                str(repos["sealbox"]),
                "latest",
                str(target),
                "--identity",
                str(identity),
            ]
            restore[tool] = run(argv, env=env)
        elif tool == "restic":
            restore[tool] = run(
                [
                    "restic",
                    "-q",
                    "-r",
                    str(repos["restic"]),
                    "restore",
                    "latest",
                    "--target",
                    str(target),
                ],
                env=env,
            )
        else:
            last = f"a{next(counter) - 1}"
            restore[tool] = run(
                ["borg", "extract", f"{repos['borg']}::{last}"], cwd=target, env=env
            )
        shutil.rmtree(target)
        subprocess.run(["sync"], check=True)
    results["restore"] = restore

    print(
        f"\nRepository benchmark: {args.size_mb} MiB dataset (seed {args.seed}), one run each, warm cache"
    )
    print(
        f"{'step':<20} {'sealbox':>16} {'restic':>16} {'borg':>16} {'sealbox/restic':>15} {'goal':>6}"
    )
    for step, row in results.items():
        cells = [f"{row[t][0]:6.2f} s {row[t][1]:4.0f} MiB" for t in tools]
        ratio = row["sealbox"][0] / row["restic"][0]
        verdict = "ok" if ratio <= GOALS[step] else "MISSED"
        print(
            f"{step:<20} {cells[0]:>16} {cells[1]:>16} {cells[2]:>16} {ratio:>15.2f} {GOALS[step]:>6} {verdict}"
        )
    print(
        f"{'repository size':<20} "
        + " ".join(f"{sizes[t] / 2**20:>12.1f} MiB" for t in tools)
        + f" {sizes['sealbox'] / sizes['restic']:>15.3f} {1.02:>6} "
        + ("ok" if sizes["sealbox"] <= 1.02 * sizes["restic"] else "MISSED")
    )
    peak = {t: max(row[t][1] for row in results.values()) for t in tools}
    print(
        f"{'peak memory':<20} "
        + " ".join(f"{peak[t]:>12.0f} MiB" for t in tools)
        + f" {peak['sealbox'] / peak['restic']:>15.2f} {1.0:>6} "
        + ("ok" if peak["sealbox"] <= peak["restic"] else "MISSED")
    )
    print(
        "borg 1.2 with its defaults (lz4); restic with its defaults (zstd auto); sealbox zstd level 1."
    )
    shutil.rmtree(run_dir)


def _identity() -> str:
    sys.path.insert(0, str(ROOT / "src"))
    from sealbox.crypto import agekeys

    identity = agekeys.identity_from_secret(agekeys.new_secret())
    return f"# public key: {agekeys.recipient_of(identity)}\n{identity}\n"


if __name__ == "__main__":
    main()
