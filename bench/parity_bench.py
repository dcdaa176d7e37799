#!/usr/bin/env python3
"""Benchmark: parity for repository objects (docs/design/format.md §9a).

1. Codings: zfec in process (the policies Sealbox offers, on an 8 MiB pack of random bytes:
   stored overhead, encode and one-region rebuild throughput, medians of ``--rounds``) against
   PAR2 (`par2` from Debian's par2cmdline, when installed) creating and repairing 4 KiB blocks at
   7% on one 64 MiB file.
2. With ``--repo``: on the shared 1 GiB dataset (``--size-mb``), per round and from fresh
   repositories, `sealbox repo backup` with `--parity off` and with the default (order
   alternating between rounds), then on the default one `repo check --read-data` and, after 20
   4 KiB regions are zeroed in random objects (seeded), `repo check --repair`. Goals (the
   storage issue): parity <= 10% of the initial backup's wall time; the repair < 2x the
   read-data check. Each step is one process, after a `sync` and a settle pause.

    python bench/parity_bench.py [--rounds 5] [--repo [--size-mb 1024] [--repo-rounds 3]]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import ensure_dataset
from sealbox.crypto import agekeys
from sealbox.repo import parity as par

ROOT = Path(__file__).resolve().parents[1]
SETTLE = 1.0

POLICIES = (par.ParityPolicy(32, 1), par.ParityPolicy(16, 1), par.ParityPolicy(32, 2))
POLICIES += (par.ParityPolicy(10, 1),)


def timed(action: object, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def zfec_rows(rounds: int) -> None:
    data = os.urandom(8 << 20)
    damaged = bytearray(data)
    damaged[12_345 : 12_345 + 4096] = bytes(4096)
    print("| policy | stored overhead | encode | rebuild after one 4 KiB region |")
    print("|---|---|---|---|")
    for policy in POLICIES:
        blob = par.encode_parity("data/00/x", data, policy)
        encode = timed(lambda p=policy: par.encode_parity("data/00/x", data, p), rounds)
        parity = par.decode_parity(blob, "x")
        rebuild = timed(lambda p=parity: par.rebuild(p, bytes(damaged)), rounds)
        print(
            f"| {policy.k}+{policy.m} | {100 * len(blob) / len(data):.2f}% |"
            f" {8 / encode:.0f} MiB/s | {8 / rebuild:.0f} MiB/s |"
        )


def par2_rows() -> None:
    tool = shutil.which("par2")
    if tool is None:
        print("par2 not installed (apt-get install par2): PAR2 not measured")
        return
    with tempfile.TemporaryDirectory() as tmp:
        obj = Path(tmp) / "obj.bin"
        obj.write_bytes(os.urandom(64 << 20))
        started = time.perf_counter()
        subprocess.run([tool, "create", "-q", "-q", "-s4096", "-r7", str(obj)], check=True)
        create = time.perf_counter() - started
        with obj.open("r+b") as handle:
            handle.seek(409_600)
            handle.write(bytes(4096))
        started = time.perf_counter()
        subprocess.run([tool, "repair", "-q", "-q", f"{obj}.par2"], check=True)
        repair = time.perf_counter() - started
        files = len(list(Path(tmp).glob("*.par2")))
    print(
        f"PAR2 (4 KiB blocks, 7%), 64 MiB: create {create:.2f} s ({64 / create:.1f} MiB/s,"
        f" {files} files), repair of one zeroed 4 KiB block {repair:.2f} s"
    )


CPU: dict[str, list[float]] = {}  # CPU seconds (user + system) per step, beside the wall times


def _run(argv: list[str], env: dict[str, str], step: str) -> float:
    """Wall seconds of one command (its CPU seconds go to CPU[step]); stops the bench if it
    fails. CPU time is what a shared machine disturbs least: both are reported."""
    subprocess.run(["sync"], check=True)
    time.sleep(SETTLE)
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"failed: {' '.join(argv)}\n{err}")
    CPU.setdefault(step, []).append(usage.ru_utime + usage.ru_stime)
    return wall


def _damage(repo: Path, regions: int, seed: int) -> None:
    rng = random.Random(seed)
    objects = sorted(
        p
        for p in repo.rglob("*")
        if p.is_file() and p.relative_to(repo).parts[0] not in ("locks", "parity")
    )
    for path in rng.sample(objects, min(regions, len(objects))):
        data = bytearray(path.read_bytes())
        at = rng.randrange(len(data))
        data[at : at + 4096] = bytes(len(data[at : at + 4096]))
        path.write_bytes(bytes(data))


def repo_rows(args: argparse.Namespace) -> None:
    work = args.workdir.absolute()
    data = ensure_dataset(work / f"pristine-{args.size_mb}-1", args.size_mb, 1, args.dataset_tool)
    sealbox = [sys.executable, "-m", "sealbox"]
    rows: dict[str, list[float]] = {}
    for n in range(args.repo_rounds):
        run_dir = work / "run"
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        env = {**os.environ, "SEALBOX_STATE_DIR": str(run_dir / "state")}
        identity = run_dir / "identity.txt"
        secret = agekeys.identity_from_secret(agekeys.new_secret())
        identity.write_text(secret + "\n")
        recipient = agekeys.recipient_of(secret)
        order = ("off", "default") if n % 2 == 0 else ("default", "off")
        for mode in order:
            repo = run_dir / f"repo-{mode}"
            parity = ["--parity", "off"] if mode == "off" else []
            init = [*sealbox, "repo", "init", str(repo), "--recipient", recipient, *parity]
            subprocess.run(init, check=True, env=env, stdout=subprocess.DEVNULL)
            backup = [*sealbox, "repo", "backup", str(repo), str(data), *parity]
            step = f"initial backup, parity {mode}"
            rows.setdefault(step, []).append(_run(backup, env, step))
        repo = run_dir / "repo-default"
        check = [*sealbox, "repo", "check", str(repo)]
        steps = {
            "check (structure)": check,
            "check --read-data": [*check, "--read-data", "--identity", str(identity)],
            "check --repair, 20 regions": [*check, "--repair"],
            "check after repair": check,
        }
        for step, argv in steps.items():
            if step.startswith("check --repair"):
                _damage(repo, 20, seed=n)
            rows.setdefault(step, []).append(_run(argv, env, step))
        sizes = {
            m: sum(p.stat().st_size for p in (run_dir / f"repo-{m}").rglob("*") if p.is_file())
            for m in ("off", "default")
        }
        rows.setdefault("stored MiB, parity off", []).append(sizes["off"] / 2**20)
        rows.setdefault("stored MiB, parity default", []).append(sizes["default"] / 2**20)
        shutil.rmtree(run_dir)
    print(
        f"\nRepository, {args.size_mb} MiB dataset, median of {args.repo_rounds} rounds (min-max)"
    )
    print("| step | wall | CPU (user + system) |")
    print("|---|---|---|")
    for step, values in rows.items():
        unit = "" if step.startswith("stored") else " s"
        cpu = CPU.get(step)
        cpu_cell = f"{statistics.median(cpu):.2f} s ({min(cpu):.2f}-{max(cpu):.2f})" if cpu else "-"
        print(
            f"| {step} | {statistics.median(values):.2f}{unit}"
            f" ({min(values):.2f}-{max(values):.2f}) | {cpu_cell} |"
        )
    med = {k: statistics.median(v) for k, v in rows.items()}
    for what, table in (("wall", rows), ("CPU", CPU)):
        off, on = table["initial backup, parity off"], table["initial backup, parity default"]
        paired = statistics.median(b / a - 1 for a, b in zip(off, on, strict=True))
        repair, deep = table["check --repair, 20 regions"], table["check --read-data"]
        ratio = statistics.median(r / d for r, d in zip(repair, deep, strict=True))
        print(
            f"{what}: parity cost of the initial backup {100 * paired:+.1f}% (median of the"
            f" rounds' pairs; goal <= 10%); check --repair / check --read-data {ratio:.2f}"
            " (goal < 2)"
        )
    print(
        f"stored overhead: {100 * (med['stored MiB, parity default'] / med['stored MiB, parity off'] - 1):.2f}%"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repo", action="store_true", help="Also the repository figures.")
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--repo-rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "results" / "parity")
    parser.add_argument(
        "--dataset-tool", type=Path, default=ROOT.parent / "shared" / "bench" / "make_dataset.py"
    )
    args = parser.parse_args()
    zfec_rows(args.rounds)
    par2_rows()
    if args.repo:
        repo_rows(args)


if __name__ == "__main__":
    main()
