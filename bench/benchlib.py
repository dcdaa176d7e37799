"""Helpers shared by the benchmark scripts (imported from their own directory)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path


def timed(argv: list[str], **kw: object) -> float:
    """Wall seconds of one command run to completion; raises if it fails."""
    started = time.perf_counter()
    subprocess.run(argv, check=True, **kw)  # type: ignore[call-overload]
    return time.perf_counter() - started


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
