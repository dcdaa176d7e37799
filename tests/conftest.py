"""Shared fixtures: an in-process CLI runner and a small demo appliance with a 3-of-5 key."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from sealbox.cli.main import main
from sealbox.demo import vault
from sealbox.demo.run import _config_text

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(name: str) -> str:
    """Path of an external tool; skip without it, except in CI where it must be there."""
    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"{name} is required under CI=true (scripts/install-tools.sh installs it)")
        pytest.skip(f"{name} is not installed (run scripts/install-tools.sh as root)")
    return path


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def sealbox(capsys: pytest.CaptureFixture[str]):
    """Run the CLI in-process: ``sealbox("keys", "list")`` -> Result(code, out, err)."""

    def run(*args: str | Path) -> Result:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@dataclass
class Appliance:
    root: Path
    config: Path
    remote: Path
    shares: list[Path]

    def share_args(self, *numbers: int) -> list[str]:
        out: list[str] = []
        for n in numbers:
            out += ["--share", str(self.shares[n - 1])]
        return out

    def backups(self) -> list[Path]:
        return sorted(self.remote.glob("secrets-*.age"))


def make_appliance(root: Path, sealbox, per_type: int = 15) -> Appliance:
    vault.create_vault(root / "appliance" / "vault.db", per_type=per_type)
    (root / "remote").mkdir()
    config = root / "sealbox.toml"
    config.write_text(_config_text(root), encoding="utf-8")
    result = sealbox(
        "keys",
        "ceremony",
        "--shares",
        "5",
        "--threshold",
        "3",
        "--out",
        root / "custodians",
        "--config",
        config,
    )
    assert result.code == 0, result.err
    shares = [root / "custodians" / f"share-{n:02d}.txt" for n in range(1, 6)]
    return Appliance(root, config, root / "remote", shares)


@pytest.fixture
def appliance(tmp_path: Path, sealbox) -> Appliance:
    return make_appliance(tmp_path, sealbox)
