"""`make mutate` and `make mutate-sample`: mutmut on the safety-critical modules, one group at a time.

Each group names its modules and the tests that exercise them. mutmut reads its settings from
the pyproject.toml of the folder it runs in and keeps its mutants and results there, so each group
runs in its own folder, .mutation/<group>/, with src/ and tests/ linked in and a pyproject.toml that
is ours with the group's [tool.mutmut]. Within a group mutmut runs, for each mutant, only the
tests that call the mutated function. Mutants exist only inside the test process: a `sealbox`
process that a test starts runs the unmutated code, so a module tested only through child
processes (the agent, the daemon's API) scores low here for that reason (docs/testing.md).

Usage:
    python scripts/mutate.py [GROUP...]        every mutant of the groups (all groups by default)
    python scripts/mutate.py --sample          CI's fixed sample (SAMPLE); exit 1 when a sampled
                                               mutant survives that docs/testing.md does not accept
Prints the kill rate per module; the results stay in .mutation/<group>/mutants/ (browse them with
`cd .mutation/<group> && mutmut browse`).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutation"
MUTMUT = Path(sys.executable).parent / "mutmut"

# group -> (modules under src/sealbox, tests that exercise them in-process)
GROUPS: dict[str, tuple[list[str], list[str]]] = {
    "crypto": (
        ["crypto/shares.py", "crypto/sshsig.py", "crypto/trust.py", "keys/material.py"],
        [
            "tests/unit/test_shares.py",
            "tests/unit/test_shares_sheets.py",
            "tests/unit/test_sshsig.py",
            "tests/unit/test_sshsig_refusals.py",
            "tests/unit/test_trust.py",
            "tests/unit/test_trust_format.py",
            "tests/unit/test_agekeys.py",
            "tests/e2e/test_secrets_flow.py",
        ],
    ),
    "format": (
        ["repo/format.py", "repo/tree.py", "repo/check.py"],
        [
            "tests/unit/test_repo_vectors.py",
            "tests/unit/test_format_fuzz.py",
            "tests/unit/test_repo_signatures.py",
            "tests/repo/test_format_props.py",
            "tests/repo/test_damage.py",
            "tests/adversarial/test_hostile_storage.py",
        ],
    ),
    "parity": (
        ["repo/parity.py", "repo/heal.py"],
        [
            "tests/unit/test_parity_vectors.py",
            "tests/repo/test_parity.py",
        ],
    ),
    "restore": (
        ["repo/restore.py", "repo/dirfd.py"],
        [
            "tests/repo/test_roundtrip.py",
            "tests/repo/test_damage.py",
            "tests/adversarial/test_restore_attacks.py",
        ],
    ),
    "recordings": (
        [
            "recordings/scan.py",
            "recordings/verify.py",
            "recordings/manifest.py",
            "recordings/restore.py",
        ],
        [
            "tests/unit/test_recordings_scan.py",
            "tests/adversarial/test_recordings_trust.py",
            "tests/e2e/test_recordings.py",
        ],
    ),
    "breakglass": (
        ["breakglass/opener.py", "breakglass/package.py"],
        [
            "tests/unit/test_package.py",
            "tests/adversarial/test_forged_backups.py",
            "tests/e2e/test_opener_cli.py",
        ],
    ),
    "agent": (
        ["agent/app.py", "agent/tokens.py"],
        ["tests/adversarial/test_agent_peer.py", "tests/integration/test_agent.py"],
    ),
    "auth": (
        ["dashboard/auth.py", "daemon/api.py"],
        ["tests/adversarial/test_daemon_peer.py", "tests/e2e/test_dashboard.py"],
    ),
}

# CI's sample (`make mutate-sample`): a fixed subset, run as its own group so that its stats
# run is only these tests: every mutant of the share handling, the SSHSIG
# signatures and the signer trust rules.
SAMPLE_GROUP = "sample"
GROUPS_SAMPLE = {
    SAMPLE_GROUP: (
        ["crypto/shares.py", "crypto/trust.py", "crypto/sshsig.py"],
        [
            "tests/unit/test_sshsig.py",
            "tests/unit/test_sshsig_refusals.py",
            "tests/unit/test_shares.py",
            "tests/unit/test_shares_sheets.py",
            "tests/unit/test_trust.py",
            "tests/unit/test_trust_format.py",
        ],
    )
}
SAMPLE: dict[str, list[str]] = {SAMPLE_GROUP: ["sealbox.crypto.*"]}
KILLED = ("killed", "timeout", "segfault")

ACCEPTED_HEADING = "## Accepted survivors"


def pyproject_for(modules: list[str], tests: list[str], isolation: str) -> str:
    text = (ROOT / "pyproject.toml").read_text()
    text = re.sub(r"\n\[tool\.mutmut\].*?(?=\n\[|\Z)", "", text, flags=re.S)
    lines = [
        "",
        "[tool.mutmut]",
        'source_paths = ["src"]',
        "only_mutate = [" + ", ".join(f'"src/sealbox/{m}"' for m in modules) + "]",
        "pytest_add_cli_args_test_selection = [" + ", ".join(f'"{t}"' for t in tests) + "]",
        'pytest_add_cli_args = ["-p", "no:cacheprovider"]',
        f'process_isolation = "{isolation}"',
        "",
    ]
    return text + "\n".join(lines)


def prepare(group: str) -> Path:
    modules, tests = {**GROUPS, **GROUPS_SAMPLE}[group]
    folder = WORK / group
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("src", "tests"):
        link = folder / name
        if not link.is_symlink():
            link.symlink_to(ROOT / name)
    settings = folder / "pyproject.toml"
    # Forked from the process that ran the whole selection, a worker inherits the threads and locks
    # the CLI tests left behind and hangs until mutmut's timeout (every mutant of the recordings and
    # repository groups did): those fork from a fresh server. The sample's unit tests leave none.
    isolation = "fork" if group in GROUPS_SAMPLE else "forkserver"
    wanted = pyproject_for(modules, tests, isolation)
    if settings.exists() and settings.read_text() != wanted:
        # mutmut keeps a file it copied unmutated when it is later asked to mutate it: start over
        shutil.rmtree(folder / "mutants", ignore_errors=True)
    settings.write_text(wanted)
    return folder


def mutmut(folder: Path, *args: str, capture: bool = False) -> str:
    env = {**os.environ, "CI": os.environ.get("CI", "")}
    done = subprocess.run(
        [str(MUTMUT), *args], cwd=folder, env=env, check=False, text=True, capture_output=capture
    )
    if done.returncode != 0:
        raise SystemExit(f"mutmut {' '.join(args)} failed in {folder} ({done.returncode})")
    return done.stdout if capture else ""


def results(folder: Path) -> dict[str, str]:
    """mutant name -> status (killed, survived, no tests, timeout, ...)."""
    out = mutmut(folder, "results", "--all", "true", capture=True)
    found: dict[str, str] = {}
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and name.startswith("sealbox."):
            found[name] = status
    return found


def module_of(mutant: str) -> str:
    """``sealbox.crypto.shares.x_split__mutmut_3`` -> ``crypto/shares.py``."""
    parts = mutant.split(".")
    head = [p for p in parts[1:] if not p.startswith(("x_", "xǁ"))]
    return "/".join(head) + ".py"


def accepted() -> set[str]:
    """The survivors docs/testing.md accepts: names in backticks under its heading."""
    doc = ROOT / "docs" / "testing.md"
    if not doc.exists():
        return set()
    text = doc.read_text().split(ACCEPTED_HEADING, 1)[-1]
    return set(re.findall(r"`(sealbox\.[^`]+__mutmut_\d+)`", text))


def report(found: dict[str, str]) -> None:
    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    for name, status in found.items():
        by_module[module_of(name)][status] += 1
    print(
        f"{'module':<26}{'mutants':>8}{'killed':>8}{'timeout':>8}{'survived':>9}"
        f"{'no tests':>9}{'kill%':>7}"
    )
    for module, counts in sorted(by_module.items()):
        total = sum(counts.values()) - counts["skipped"]
        killed = sum(counts[k] for k in KILLED)
        rate = 100.0 * killed / total if total else 100.0
        print(
            f"{module:<26}{total:>8}{counts['killed'] + counts['segfault']:>8}"
            f"{counts['timeout']:>8}{counts['survived']:>9}{counts['no tests']:>9}{rate:>6.1f}%"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("groups", nargs="*", choices=[[], *GROUPS], default=[])
    parser.add_argument("--sample", action="store_true", help="CI's seeded sample")
    parser.add_argument("--max-children", default=str(os.cpu_count() or 2))
    args = parser.parse_args()
    if args.sample:
        return sample(args.max_children)
    everything: dict[str, str] = {}
    for group in args.groups or list(GROUPS):
        folder = prepare(group)
        print(f"== {group}: {', '.join(GROUPS[group][0])}", flush=True)
        mutmut(folder, "run", "--max-children", args.max_children)
        everything.update(results(folder))
    print()
    report(everything)
    return 0


def sample(max_children: str) -> int:
    ok = accepted()
    bad: list[str] = []
    for group, patterns in SAMPLE.items():
        folder = prepare(group)
        print(f"== sample of {group}: {' '.join(patterns)}", flush=True)
        mutmut(folder, "run", "--max-children", max_children, *patterns)
        found = results(folder)
        picked = {n: s for n, s in found.items() if any(fnmatch(n, p) for p in patterns)}
        report(picked)
        bad += [n for n, s in picked.items() if s not in KILLED and n not in ok]
    for name in bad:
        print(f"mutant survived: {name} (see docs/testing.md)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
