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


# Lazy first-party imports, each measured and commented where it is made.
LAZY_ALLOWED = {
    "sealbox/sources/__init__.py",  # a source's driver (SQLAlchemy, pykeepass)
    "sealbox/backends/registry.py",  # the options models: the plumbing never imports pydantic
    # The custodian's light install (no pydantic, no server libraries): these command groups
    # mix break-glass commands with appliance ones that load the config.
    "sealbox/cli/common.py",
    "sealbox/cli/keys_cmd.py",
    "sealbox/cli/receipt_cmd.py",
}


def _local_first_party_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for sub in ast.walk(node):
                if (
                    isinstance(sub, ast.ImportFrom)
                    and sub.module
                    and sub.module.startswith("sealbox")
                ) or (
                    isinstance(sub, ast.Import)
                    and any(a.name.startswith("sealbox") for a in sub.names)
                ):
                    found.append(f"{path}:{sub.lineno}")
    return found


def test_first_party_imports_are_at_the_top_of_modules():
    """The dependency graph is what the top of each module says (lint-imports reads it too)."""
    found = [
        use
        for path in sorted((SRC / "sealbox").rglob("*.py"))
        if str(path.relative_to(SRC)) not in LAZY_ALLOWED
        for use in _local_first_party_imports(path)
    ]
    assert found == []


def test_the_import_check_sees_a_local_import(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text(
        "def f():\n    from sealbox.errors import ConfigError\n    return ConfigError\n"
    )
    assert len(_local_first_party_imports(planted)) == 1
