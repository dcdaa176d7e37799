"""The layer rules that import-linter cannot check: no module reaches into another module's
private names (``from sealbox.x import _name``, or ``module._name`` on an imported module)."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _private_uses(path: Path, own: str | None = None) -> list[str]:
    own = own or ".".join(path.with_suffix("").relative_to(SRC).parts)
    tree = ast.parse(path.read_text())
    found: list[str] = []
    modules: dict[str, str] = {}  # local name -> first-party module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sealbox"):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    if node.module != own:
                        found.append(
                            f"{path}:{node.lineno}: from {node.module} import {alias.name}"
                        )
                elif _is_module(f"{node.module}.{alias.name}"):
                    modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("sealbox") and alias.asname:
                    modules[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and modules[node.value.id] != own
        ):
            found.append(f"{path}:{node.lineno}: {modules[node.value.id]}.{node.attr}")
    return found


def test_no_module_uses_another_modules_private_names():
    found = [use for path in sorted((SRC / "sealbox").rglob("*.py")) for use in _private_uses(path)]
    assert found == []


def test_the_check_sees_a_private_import(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text(
        "from sealbox.destinations.sizing import _state\n"
        "from sealbox.util import redact\n"
        "redact._x\n"
        "from sealbox.util.redact import mask_url\n"
    )
    assert len(_private_uses(planted, "sealbox.util.planted")) == 2
