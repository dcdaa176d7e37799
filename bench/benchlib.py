"""Helpers shared by the benchmark scripts (imported from their own directory)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATASET_TOOL = ROOT.parent / "shared" / "bench" / "make_dataset.py"


def ensure_dataset(path: Path, size_mb: int, seed: int, tool: Path = DATASET_TOOL) -> Path:
    """The shared generator's dataset at ``path``, generated once (kept for later runs)."""
    if not path.exists():
        if not tool.exists():
            raise SystemExit(f"{tool} missing: the dataset generator comes from ../shared/bench/")
        print(f"generating the {size_mb} MiB dataset once ...", flush=True)
        subprocess.run(
            [
                sys.executable,
                str(tool),
                "--out",
                str(path),
                "--size-mb",
                str(size_mb),
                "--seed",
                str(seed),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return path


def timed(argv: list[str], **kw: object) -> float:
    """Wall seconds of one command run to completion; raises if it fails."""
    started = time.perf_counter()
    subprocess.run(argv, check=True, **kw)  # type: ignore[call-overload]
    return time.perf_counter() - started


def timed_cpu(argv: list[str], **kw: object) -> tuple[float, float]:
    """(wall seconds, CPU seconds user+system) of one command and its children; raises if it
    fails. The CPU figure is the client's own work, whatever servers on the same box take."""
    before = os.times()
    started = time.perf_counter()
    subprocess.run(argv, check=True, **kw)  # type: ignore[call-overload]
    wall = time.perf_counter() - started
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return wall, cpu


def write_config(path: Path, *, state_dir: Path, recipient: str, remote: Path, body: str) -> Path:
    """A sealbox.toml for a benchmark appliance under ``path.parent`` writing to ``remote``."""
    path.write_text(f"""
[appliance]
name = "bench"
state_dir = "{state_dir}"
var_dir = "{path.parent}"
[keys]
recipients = ["{recipient}"]
[destinations.remote]
url = "file://{remote}"
allow_on_appliance = true
{body}""")
    return path
