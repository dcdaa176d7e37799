"""The browser opener's build is reproducible: the same inputs (sources, the lockfile's exact
packages) give the same bytes, and those are the bytes this package ships."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from sealbox.breakglass import opener_html
from tests.conftest import IN_CI

OPENER = Path(__file__).parents[2] / "opener"


def _build(out: Path) -> bytes:
    node = shutil.which("node")
    if node is None or not (OPENER / "node_modules").is_dir():
        reason = "node or opener/node_modules is missing (make opener-deps)"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    subprocess.run(
        [node, "build.mjs", "--out", str(out)], cwd=OPENER, check=True, capture_output=True
    )
    return out.read_bytes()


def test_the_build_gives_the_shipped_bytes_every_time(tmp_path):
    first = _build(tmp_path / "a.html")
    second = _build(tmp_path / "b.html")
    assert first == second
    assert first == opener_html.opener_bytes(), (
        "src/sealbox/breakglass/opener.html is not what opener/ builds: run `make opener`"
    )


def test_the_lockfile_pins_every_package_exactly():
    lock = json.loads((OPENER / "package-lock.json").read_text())
    packages = {k: v for k, v in lock["packages"].items() if k}
    assert packages and all(v.get("integrity", "").startswith("sha512-") for v in packages.values())
    manifest = json.loads((OPENER / "package.json").read_text())
    for deps in (manifest["dependencies"], manifest["devDependencies"]):
        assert all(v[0].isdigit() for v in deps.values()), deps  # exact versions, no ranges
