#!/usr/bin/env python3
"""Benchmark: parity codings for repository objects (docs/design/format.md §9a).

zfec in process (the policies Sealbox offers, on an 8 MiB pack of random bytes: stored overhead,
encode and one-region rebuild throughput, medians of ``--rounds``) against PAR2 (`par2` from
Debian's par2cmdline, when installed) creating and repairing 4 KiB blocks at 7% on one 64 MiB file.

    python bench/parity_bench.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from sealbox.repo import parity as par

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    zfec_rows(args.rounds)
    par2_rows()


if __name__ == "__main__":
    main()
