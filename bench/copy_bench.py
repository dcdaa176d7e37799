"""`sealbox copy` against `cp -r` of the same objects, between two local destinations.

A system backup of the shared dataset (1 GiB by default) is made once into destination A. Then,
in each round, both tools copy A's objects to an empty directory: `cp -r A/repo B/repo` (what a
copy costs at the least: read and write every byte) and `sealbox copy --to b` (the same bytes,
each content-named object checked by its name, the snapshots' and the config's signatures
verified, in publishing order). Fair: the same source, page cache dropped is not possible here so
both read a warm source; a `sync` and a settle pause before each timed step; the order alternates
over the rounds; medians (and min-max) are reported. Goal: sealbox copy >= 0.8x the speed of
cp -r (ratio of times <= 1.25).

    python bench/copy_bench.py [--size-mb 1024] [--rounds 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchlib import ensure_dataset, timed, write_config

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "copy"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = ensure_dataset(ROOT / "results" / "repo" / f"pristine-{args.size_mb}-1", args.size_mb, 1)
    work = RESULTS / "run"
    shutil.rmtree(work, ignore_errors=True)
    (work / "a").mkdir(parents=True)
    sealbox = str(Path(sys.executable).parent / "sealbox")
    # A real appliance key: the copy verifies signatures with the keystore's signer.
    identity = subprocess.run(
        [
            sys.executable,
            "-c",
            "import pyrage; i=pyrage.x25519.Identity.generate(); print(i.to_public())",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    body = f"""
[destinations.b]
url = "file://{work / "b"}"
allow_on_appliance = true
[system]
destination = "remote"
paths = ["{data}"]
[[copies]]
from = "remote"
to = "b"
"""
    config = write_config(
        work / "sealbox.toml",
        state_dir=work / "state",
        recipient=identity,
        remote=work / "a",
        body=body,
    )
    print(f"system backup of {data} into A ...", flush=True)
    subprocess.run(
        [sealbox, "backup", "system", "--config", str(config)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    source_bytes = sum(p.stat().st_size for p in (work / "a" / "repo").rglob("*") if p.is_file())

    def settle() -> None:
        subprocess.run(["sync"], check=True)
        time.sleep(2)

    def reset() -> None:
        for name in ("b", "cp"):
            shutil.rmtree(work / name, ignore_errors=True)
        (work / "b").mkdir()
        (work / "cp").mkdir()

    def cp() -> float:
        # Then sync: sealbox's copy is durable when it returns (it syncs each group), so cp's
        # time includes writing its bytes out too.
        return timed(
            ["sh", "-c", f"cp -r '{work / 'a' / 'repo'}' '{work / 'cp' / 'repo'}' && sync"]
        )

    def copy() -> float:
        return timed(
            [sealbox, "copy", "--to", "b", "--config", str(config)], stdout=subprocess.DEVNULL
        )

    times: dict[str, list[float]] = {"cp -r": [], "sealbox copy": []}
    steps = [("cp -r", cp), ("sealbox copy", copy)]
    for round_ in range(args.rounds):
        order = steps if round_ % 2 == 0 else list(reversed(steps))
        reset()
        for name, step in order:
            settle()
            times[name].append(step())
    print(
        f"\n{source_bytes / 2**20:,.0f} MiB of repository objects, {args.rounds} rounds (median, min-max)"
    )
    for name, values in times.items():
        rate = source_bytes / statistics.median(values) / 2**20
        print(
            f"  {name:<13} {statistics.median(values):6.2f} s  ({min(values):.2f}-{max(values):.2f})  {rate:6.0f} MiB/s"
        )
    ratio = statistics.median(times["sealbox copy"]) / statistics.median(times["cp -r"])
    print(
        f"  sealbox copy / cp -r: {ratio:.2f}x the time ({1 / ratio:.2f}x the speed; goal >= 0.8x)"
    )


if __name__ == "__main__":
    main()
