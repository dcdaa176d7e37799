"""The custodian's install (`pip install sealbox`, without the appliance extra) opens backups:
every break-glass command runs with the appliance's dependencies absent, and an appliance
command says in one line what is missing."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"
# Distribution name -> import name, where they differ.
_IMPORT = {"argon2-cffi": "argon2", "psycopg[binary]": "psycopg"}

_RUN = """
import sys
blocked = set(sys.argv[1].split(","))

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Block())
from sealbox.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


def _appliance_only() -> list[str]:
    """Import names of the appliance extra's packages that the base install does not pull in."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    names = []
    for spec in project["optional-dependencies"]["appliance"]:
        dist = spec.split(">")[0].split("=")[0].strip()
        names.append(_IMPORT.get(dist, dist.split("[")[0]))
    # pykeepass (KDBX export, a base dependency) needs argon2-cffi itself.
    return [n for n in names if n != "argon2"]


def _light(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _RUN, ",".join(_appliance_only()), *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
    )


def test_break_glass_runs_without_the_appliance_dependencies(appliance, sealbox, tmp_path):
    assert "pydantic" in _appliance_only() and "starlette" in _appliance_only()
    assert sealbox("backup", "secrets", "--config", appliance.config).code == 0
    backup = appliance.backups()[0]
    shares = appliance.share_args(1, 2, 3)
    (tmp_path / "pw").write_text("kdbx pass\n")
    for args in (
        ("breakglass", "verify", backup),
        ("breakglass", "open", backup, *shares, "list"),
        ("breakglass", "open", backup, *shares, "show", "cred-00001", "--reveal"),
        (
            "breakglass",
            "open",
            backup,
            *shares,
            "export",
            "--format",
            "kdbx",
            "--out",
            tmp_path / "v.kdbx",
            "--password-file",
            tmp_path / "pw",
        ),
        ("breakglass", "opener", "--out", tmp_path / "opener.html"),
        ("keys", "combine", *shares),
    ):
        done = _light(*args, cwd=tmp_path)
        assert done.returncode == 0, (args, done.stderr)
    status = _light("status", "--config", appliance.config, cwd=tmp_path)
    assert status.returncode == 1 and "Traceback" not in status.stderr
    assert "pip install 'sealbox[appliance]'" in status.stderr
    assert len(status.stderr.strip().splitlines()) == 1
