#!/usr/bin/env python3
"""Benchmark: Sealbox's repository against restic and borg, side by side, on the same data.

Steps, for each tool, as a user would run them (one process a step): initial backup of a 1 GiB
PAM-like dataset (../shared/bench/make_dataset.py), a no-change backup, one day of change
(`make_dataset.py --mutate`) and an incremental backup, then a restore of the latest snapshot
(Sealbox also without its read-back verification, `--no-verify`, for comparison).

Fair by construction: every round starts from fresh repositories and a fresh copy of the data;
each tool has its own state and cache directories (restic's `RESTIC_CACHE_DIR`, borg's
`BORG_BASE_DIR`, Sealbox's state dir); before every timed step the page cache's dirty pages are
written back (`sync`) and the machine settles for a second, so one tool's writeback never lands
on the next; the tools' order rotates from round to round; the table gives the median of the
rounds with min-max, wall time and peak RSS (wait4) per step, and the Sealbox/restic ratios with
the goals of the repository-engine issue.

    python bench/repo_bench.py [--size-mb 1024] [--rounds 3] [--workdir bench/results/repo]
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

from benchlib import ensure_dataset

ROOT = Path(__file__).resolve().parents[1]
GOALS = {"initial backup": 0.5, "no-change backup": 0.5, "incremental backup": 0.6, "restore": 0.8}
TOOLS = ("sealbox", "restic", "borg")
SETTLE = 1.0  # seconds of quiet after the sync before a timed step


def run(
    argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one command, after a sync and a settle pause; stops the
    benchmark if it fails."""
    subprocess.run(["sync"], check=True)
    time.sleep(SETTLE)
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


def one_round(
    order: tuple[str, ...], pristine: Path, run_dir: Path, dataset_tool: Path
) -> tuple[dict[str, dict[str, tuple[float, float]]], dict[str, int]]:
    """Every step of every tool in ``order``, from fresh repositories: (results, repo sizes)."""
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    data = run_dir / "data"
    subprocess.run(["cp", "-a", str(pristine), str(data)], check=True)
    env = {
        **os.environ,
        "RESTIC_PASSWORD": "bench",
        "RESTIC_CACHE_DIR": str(run_dir / "restic-cache"),
        "BORG_PASSPHRASE": "bench",
        "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
        "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
        "SEALBOX_STATE_DIR": str(run_dir / "sealbox-state"),
        "BORG_BASE_DIR": str(run_dir / "borg-base"),
    }
    sealbox = [sys.executable, "-m", "sealbox"]
    identity = run_dir / "identity.txt"
    if shutil.which("age-keygen"):
        subprocess.run(["age-keygen", "-o", str(identity)], check=True, capture_output=True)
    else:
        identity.write_text(_identity())
    recipient = next(
        line.split(": ")[1] for line in identity.read_text().splitlines() if "public key" in line
    )
    repos = {t: run_dir / f"{t}-repo" for t in TOOLS}
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
    for step in ("initial backup", "no-change backup"):
        results[step] = {t: run(backup(t), env=env) for t in order}
    subprocess.run(
        [sys.executable, str(dataset_tool), "--mutate", str(data)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    results["incremental backup"] = {t: run(backup(t), env=env) for t in order}
    sizes = {t: du(repos[t]) for t in TOOLS}
    last_borg = f"a{next(counter) - 1}"
    results["restore"] = {}
    results["restore, no read-back"] = {}
    for tool in order:
        for step, extra in (("restore", []), ("restore, no read-back", ["--no-verify"])):
            if step != "restore" and tool != "sealbox":
                continue
            target = run_dir / f"restore-{tool}"
            target.mkdir()
            if tool == "sealbox":
                argv = [*sealbox, "repo", "restore", str(repos["sealbox"]), "latest", str(target),
                        "--identity", str(identity), *extra]  # fmt: skip
                results[step][tool] = run(argv, env=env)
            elif tool == "restic":
                argv = ["restic", "-q", "-r", str(repos["restic"]), "restore", "latest",
                        "--target", str(target)]  # fmt: skip
                results[step][tool] = run(argv, env=env)
            else:
                argv = ["borg", "extract", f"{repos['borg']}::{last_borg}"]
                results[step][tool] = run(argv, cwd=target, env=env)
            shutil.rmtree(target)
    shutil.rmtree(run_dir)
    return results, sizes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
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
    rounds = []
    for n in range(args.rounds):
        order = TOOLS[n % 3 :] + TOOLS[: n % 3]  # each tool goes first once in three rounds
        print(f"round {n + 1}/{args.rounds}: {', '.join(order)}", flush=True)
        rounds.append(one_round(order, pristine, work / "run", args.dataset_tool))
    report(rounds, args)


def _cell(samples: list[float], unit: str) -> str:
    return f"{statistics.median(samples):6.2f} {unit} ({min(samples):.2f}-{max(samples):.2f})"


def report(
    rounds: list[tuple[dict[str, dict[str, tuple[float, float]]], dict[str, int]]],
    args: argparse.Namespace,
) -> None:
    steps = list(rounds[0][0])
    print(
        f"\nRepository benchmark: {args.size_mb} MiB dataset (seed {args.seed}), median of"
        f" {len(rounds)} rounds (min-max), tool order rotated, sync + {SETTLE:g} s before each step"
    )
    print(
        f"{'step':<22} {'sealbox':>24} {'restic':>24} {'borg':>24} {'sealbox/restic':>15} {'goal':>6}"
    )
    for step in steps:
        tools = [t for t in TOOLS if t in rounds[0][0][step]]
        cells = {t: _cell([r[0][step][t][0] for r in rounds], "s") for t in tools}
        row = " ".join(f"{cells.get(t, '-'):>24}" for t in TOOLS)
        goal = GOALS.get(step)
        if "restic" in tools:
            ratios = [r[0][step]["sealbox"][0] / r[0][step]["restic"][0] for r in rounds]
            ratio = statistics.median(ratios)
            verdict = "" if goal is None else ("ok" if ratio <= goal else "MISSED")
            print(f"{step:<22} {row} {ratio:>15.2f} {goal or '':>6} {verdict}")
        else:
            print(f"{step:<22} {row}")
    sizes = {t: statistics.median(r[1][t] for r in rounds) for t in TOOLS}
    print(
        f"{'repository size':<22} "
        + " ".join(f"{sizes[t] / 2**20:>20.1f} MiB" for t in TOOLS)
        + f" {sizes['sealbox'] / sizes['restic']:>15.3f} {1.02:>6} "
        + ("ok" if sizes["sealbox"] <= 1.02 * sizes["restic"] else "MISSED")
    )
    peak = {
        t: statistics.median(max(v[t][1] for v in r[0].values() if t in v) for r in rounds)
        for t in TOOLS
    }
    print(
        f"{'peak memory':<22} "
        + " ".join(f"{peak[t]:>20.0f} MiB" for t in TOOLS)
        + f" {peak['sealbox'] / peak['restic']:>15.2f} {1.0:>6} "
        + ("ok" if peak["sealbox"] <= peak["restic"] else "MISSED")
    )
    print(
        "borg 1.2 with its defaults (lz4); restic with its defaults (zstd auto); sealbox zstd"
        " level 1; each tool's own cache, fresh every round."
    )


def _identity() -> str:
    sys.path.insert(0, str(ROOT / "src"))
    from sealbox.crypto import agekeys

    identity = agekeys.identity_from_secret(agekeys.new_secret())
    return f"# public key: {agekeys.recipient_of(identity)}\n{identity}\n"


if __name__ == "__main__":
    main()
