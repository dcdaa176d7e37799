"""The gates of `make coverage`: coverage per package of src/sealbox, and a failure below a gate.

Reads coverage.py's JSON report (``coverage json``) and the gates in pyproject.toml
(``[tool.sealbox.coverage-gates]``). The percent is coverage.py's own with branch measurement:
covered statements plus covered branches over all statements plus all branches, so a gate of 90
is the number ``coverage report`` shows. The pure branch percent is printed beside it.

Usage: python scripts/coverage_gate.py coverage.json [pyproject.toml]; exit 1 when a gate fails.
"""

from __future__ import annotations

import json
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

PREFIX = "src/sealbox/"


def package_of(path: str) -> str:
    """``src/sealbox/repo/restore.py`` -> ``repo``; a module at the top -> ``(top)``."""
    rest = path.replace("\\", "/").split(PREFIX, 1)[-1]
    return rest.split("/", 1)[0] if "/" in rest else "(top)"


def totals(report: dict[str, object]) -> dict[str, list[int]]:
    """Per package: [statements, covered statements, branches, covered branches]."""
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    files = report["files"]
    assert isinstance(files, dict)
    for path, data in files.items():
        s = data["summary"]
        row = sums[package_of(path)]
        row[0] += s["num_statements"]
        row[1] += s["covered_lines"]
        row[2] += s.get("num_branches", 0)
        row[3] += s.get("covered_branches", 0)
    return dict(sums)


def percent(row: list[int]) -> float:
    whole = row[0] + row[2]
    return 100.0 * (row[1] + row[3]) / whole if whole else 100.0


def main(argv: list[str]) -> int:
    report = json.loads(Path(argv[1]).read_text())
    pyproject = Path(argv[2] if len(argv) > 2 else "pyproject.toml")
    gates = tomllib.loads(pyproject.read_text())["tool"]["sealbox"]["coverage-gates"]
    sums = totals(report)
    overall = [sum(r[i] for r in sums.values()) for i in range(4)]
    failed: list[str] = []
    print(f"{'package':<14}{'stmts':>7}{'branches':>10}{'branch%':>9}{'cover%':>8}{'gate':>6}")
    for name, row in [*sorted(sums.items()), ("OVERALL", overall)]:
        key = "overall" if name == "OVERALL" else name
        gate = gates.get(key)
        branch_pct = 100.0 * row[3] / row[2] if row[2] else 100.0
        got = percent(row)
        mark = ""
        if gate is not None and got < gate:
            failed.append(f"{key}: {got:.1f}% < gate {gate}%")
            mark = "  FAIL"
        gate_text = "" if gate is None else str(gate)
        print(
            f"{name:<14}{row[0]:>7}{row[2]:>10}{branch_pct:>8.1f}%{got:>7.1f}%{gate_text:>6}{mark}"
        )
    for line in failed:
        print(f"coverage gate failed: {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
