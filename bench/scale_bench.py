#!/usr/bin/env python3
"""Benchmark: Sealbox against restic on an appliance-like tree of many small files.

The tree comes from this script's own generator (``--files``, default 1,000,000): software,
configuration and per-target files under deep directories with realistic names, 100 B to 64 KiB
each (most under 4 KiB), mostly text, some binary, about 3% exact duplicates. It is generated
once per (files, seed) under the work directory and kept.

Steps, for each tool, as a user would run them (one process a step): initial backup, no-change
backup, 1% of the files changed (rewritten, appended to, a few new ones) and an incremental
backup, then a restore of the latest snapshot, compared file by file with the source (content
digest, size, mode, mtime; a difference stops the benchmark). Wall time and peak RSS
(the tool's process, from /usr/bin/time) per step; the ratios with the goals of issue 14.

Peak RSS is measured by /usr/bin/time around the tool (see :func:`run`). Fair like
``repo_bench.py``: every round starts from fresh repositories and a fresh copy of the
tree; each tool has its own cache and state (``RESTIC_CACHE_DIR``, the Sealbox state dir);
``sync`` and a settle pause before each timed step; the tools' order alternates over rounds;
medians with min-max.

    python bench/scale_bench.py [--files 1000000] [--rounds 1] [--borg] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import blake3

from repo_bench import SETTLE, _identity, du

ROOT = Path(__file__).resolve().parents[1]
GOALS = {
    "initial backup": 0.6,
    "no-change backup": 0.4,
    "1% changed": 0.5,
    "restore": 0.6,
}
RSS_GOAL = 0.5  # of restic's, every step
RSS_LIMIT_MIB = 400 / 1.048576  # 400 MB at 1,000,000 files
SIZE_GOAL = 1.02

_WORDS = (  # noqa: SIM905 (one string reads better than ninety quoted words)
    "config access vault session target account policy secret rotate password audit gateway"
    " proxy agent module plugin handler request response client server record admin user group"
    " role privilege credential certificate token expire enable disable timeout retry connect"
    " host port address domain realm ticket kerberos ldap radius syslog alert monitor check"
    " status health backup restore archive schedule daemon service worker queue cache index"
    " table column value default option param string number boolean list map struct import"
    " return class def self none true false error warning info debug trace level format"
).split()
_TOPS = [
    ("opt/pam/lib/python3/site-packages", ".py", 0.30),
    ("opt/pam/share/web/static", ".js", 0.08),
    ("etc/pam/conf.d", ".conf", 0.05),
    ("var/lib/pam/targets", ".json", 0.35),
    ("var/lib/pam/keys", ".pem", 0.07),
    ("usr/share/doc", ".txt", 0.05),
    ("opt/pam/lib/native", ".so", 0.10),
]


def _text_pool(rng: random.Random, size: int) -> bytes:
    """Pseudo-source text: lines of words, indents and numbers (zstd shrinks it 3-4x)."""
    lines = []
    total = 0
    while total < size:
        indent = " " * (4 * rng.randrange(4))
        words = " ".join(rng.choice(_WORDS) for _ in range(rng.randrange(2, 12)))
        line = f"{indent}{words} = {rng.randrange(10**6)}\n"
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()[:size]


def _size(rng: random.Random) -> int:
    """100 B to 64 KiB, most files small (the mean is about 3 KiB)."""
    r = rng.random()
    if r < 0.80:
        return rng.randint(100, 4096)
    if r < 0.98:
        return rng.randint(4096, 16384)
    return rng.randint(16384, 65536)


def _name(rng: random.Random, n: int) -> str:
    return f"{rng.choice(_WORDS)}_{rng.choice(_WORDS)}{n % 97}"


def generate(out: Path, files: int, seed: int) -> None:
    """An appliance-like tree of ``files`` files under ``out`` (deterministic for a seed)."""
    rng = random.Random(seed)
    text = _text_pool(rng, 32 << 20)
    binary = rng.randbytes(8 << 20)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    made: list[bytes] = []  # a few earlier contents, to duplicate
    written = reported = 0
    serial = 0
    while written < files:
        top, ext, _ = rng.choices(_TOPS, weights=[w for *_, w in _TOPS])[0]
        # A directory three to seven levels below its top, holding 5 to 60 files.
        depth = rng.randint(3, 7)
        parts = [f"{rng.choice(_WORDS)}{rng.randrange(40) if i else rng.randrange(4000)}"
                 for i in range(depth)]  # fmt: skip
        directory = tmp / top / Path(*parts)
        directory.mkdir(parents=True, exist_ok=True)
        for _ in range(min(rng.randint(5, 60), files - written)):
            serial += 1
            if made and rng.random() < 0.03:
                data = rng.choice(made)
            else:
                size = _size(rng)
                pool = binary if ext in (".so", ".pem") and rng.random() < 0.7 else text
                start = rng.randrange(len(pool) - size)
                header = f"# {serial} {directory.name}\n".encode()
                data = header + pool[start : start + size - len(header)]
                if rng.random() < 0.01:
                    made.append(data)
            path = directory / f"{_name(rng, serial)}{ext}"
            if path.exists():
                path = directory / f"{_name(rng, serial)}-{serial}{ext}"
            path.write_bytes(data)
            written += 1
        if written // 100_000 > reported:
            reported = written // 100_000
            print(f"  {written:,} files", flush=True)
    tmp.rename(out)


def mutate(data: Path, fraction: float, seed: int) -> int:
    """Change ``fraction`` of the files (rewrite half, append to half) and add a few: the
    number of files touched."""
    rng = random.Random(seed)
    paths = sorted(str(p) for p in data.rglob("*") if p.is_file())
    chosen = rng.sample(paths, max(1, int(len(paths) * fraction)))
    for i, path in enumerate(chosen):
        if i % 2:
            with open(path, "ab") as f:
                f.write(f"changed {i}\n".encode())
        else:
            size = os.path.getsize(path)
            Path(path).write_bytes(rng.randbytes(size // 4) + b"x" * (size - size // 4))
    for i in range(len(chosen) // 10):
        Path(chosen[i] + ".new").write_bytes(rng.randbytes(rng.randint(100, 4096)))
    return len(chosen) + len(chosen) // 10


def digest_tree(root: Path) -> dict[str, tuple[str, int, int, int]]:
    """relative path -> (kind + content digest or link target, size, mode, mtime_ns)."""
    out: dict[str, tuple[str, int, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                what = "l:" + os.readlink(path)
            elif name in filenames:
                with open(path, "rb") as f:
                    what = "f:" + blake3.blake3(f.read()).hexdigest()
            else:
                what = "d"
            mtime = 0 if what == "d" else st.st_mtime_ns  # a directory's mtime is the tool's
            out[rel] = (what, st.st_size if what != "d" else 0, st.st_mode, mtime)
    return out


def compare(source: dict[str, tuple[str, int, int, int]], restored: Path, tool: str) -> None:
    got = digest_tree(restored)
    if got != source:
        missing = sorted(set(source) - set(got))[:5]
        extra = sorted(set(got) - set(source))[:5]
        differ = sorted(k for k in set(got) & set(source) if got[k] != source[k])[:5]
        raise SystemExit(
            f"{tool}: restore differs from the source: missing {missing}, extra {extra},"
            f" different {differ}"
        )


Results = dict[str, dict[str, tuple[float, float, float]]]


def run(
    argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> tuple[float, float, float]:
    """(wall seconds, peak RSS MiB, CPU seconds) of one command, after a sync and a settle
    pause; stops the benchmark if it fails. CPU time (user + system) says what a step cost when
    the shared machine was busy.

    The peak RSS comes from /usr/bin/time, which starts the tool: ``wait4`` on a child of this
    process would report at least this process's own peak (the child is vforked from it and the
    kernel keeps the larger high-water mark at exec), and this process holds a million paths
    while it changes or compares the tree."""
    subprocess.run(["sync"], check=True)
    time.sleep(SETTLE)
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        started = time.perf_counter()
        proc = subprocess.run(
            ["/usr/bin/time", "-q", "-f", "%M %U %S", "-o", report.name, *argv],
            cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False,
        )  # fmt: skip
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace")
            raise SystemExit(f"failed ({proc.returncode}): {' '.join(argv)}\n{err}")
        rss_kib, user, system = report.read().split()[-3:]
    return wall, int(rss_kib) / 1024, float(user) + float(system)


def one_round(
    order: tuple[str, ...], pristine: Path, run_dir: Path, seed: int, sealbox_src: Path | None
) -> tuple[Results, dict[str, int]]:
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    data = run_dir / "data"
    subprocess.run(["cp", "-a", str(pristine), str(data)], check=True)
    env = {
        **os.environ,
        "RESTIC_PASSWORD": "bench",
        "RESTIC_CACHE_DIR": str(run_dir / "restic-cache"),
        "SEALBOX_STATE_DIR": str(run_dir / "sealbox-state"),
        "BORG_PASSPHRASE": "bench",
        "BORG_BASE_DIR": str(run_dir / "borg-base"),
        "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
    }
    if sealbox_src is not None:  # another version's source (a "before" figure)
        env["PYTHONPATH"] = str(sealbox_src.absolute())
    sealbox = [sys.executable, "-m", "sealbox"]
    identity = run_dir / "identity.txt"
    identity.write_text(_identity())
    recipient = next(
        line.split(": ")[1] for line in identity.read_text().splitlines() if "public key" in line
    )
    repos = {t: run_dir / f"{t}-repo" for t in order}
    if "sealbox" in order:
        subprocess.run(
            [*sealbox, "repo", "init", str(repos["sealbox"]), "--recipient", recipient],
            check=True, env=env, stdout=subprocess.DEVNULL,
        )  # fmt: skip
    if "restic" in order:
        subprocess.run(["restic", "init", "-q", "-r", str(repos["restic"])], check=True, env=env)
    if "borg" in order:
        subprocess.run(
            ["borg", "init", "-e", "repokey-blake2", str(repos["borg"])], check=True, env=env
        )
    archives = iter(range(100))

    def backup(tool: str) -> list[str]:
        if tool == "sealbox":
            return [*sealbox, "repo", "backup", str(repos["sealbox"]), str(data)]
        if tool == "restic":
            return ["restic", "-q", "-r", str(repos["restic"]), "backup", str(data)]
        return ["borg", "create", f"{repos['borg']}::a{next(archives)}", str(data)]

    results: Results = {}
    for step in ("initial backup", "no-change backup"):
        results[step] = {t: run(backup(t), env=env) for t in order}
    mutate(data, 0.01, seed + 1)
    results["1% changed"] = {t: run(backup(t), env=env) for t in order}
    sizes = {t: du(repos[t]) for t in order}
    source = digest_tree(data)
    results["restore"] = {}
    for tool in order:
        target = run_dir / f"restore-{tool}"
        target.mkdir()
        if tool == "sealbox":
            argv = [*sealbox, "repo", "restore", str(repos["sealbox"]), "latest", str(target),
                    "--identity", str(identity)]  # fmt: skip
            results["restore"][tool] = run(argv, env=env)
        elif tool == "restic":
            argv = ["restic", "-q", "-r", str(repos["restic"]), "restore", "latest",
                    "--target", str(target)]  # fmt: skip
            results["restore"][tool] = run(argv, env=env)
        else:
            argv = ["borg", "extract", f"{repos['borg']}::a{next(archives) - 1}"]
            results["restore"][tool] = run(argv, cwd=target, env=env)
        compare(source, target / data.relative_to("/"), tool)
        shutil.rmtree(target)
    shutil.rmtree(run_dir)
    return results, sizes


def _cell(samples: list[float], unit: str) -> str:
    return f"{statistics.median(samples):7.2f} {unit} ({min(samples):.1f}-{max(samples):.1f})"


def report(
    rounds: list[tuple[Results, dict[str, int]]], tools: tuple[str, ...], files: int
) -> None:
    print(
        f"\nScale benchmark: {files:,} files, median of {len(rounds)} round(s) (min-max), tool"
        f" order alternated, sync + {SETTLE:g} s before each step; wall time, peak RSS of the tool's"
        " process, CPU seconds (user + system)"
    )
    head = "".join(f"{t:>48}" for t in tools)
    print(f"{'step':<18}{head}   time ratio (goal)   RSS ratio (goal {RSS_GOAL})")
    for step in rounds[0][0]:
        cells = []
        for t in tools:
            walls = [r[0][step][t][0] for r in rounds]
            rss = [r[0][step][t][1] for r in rounds]
            cpu = [r[0][step][t][2] for r in rounds]
            cells.append(
                f"{_cell(walls, 's')} {statistics.median(rss):5.0f} MiB"
                f" {statistics.median(cpu):6.1f} cpu"
            )
        line = f"{step:<18}" + "".join(f"{c:>48}" for c in cells)
        if "restic" in tools and "sealbox" in tools:
            ratio = statistics.median(
                r[0][step]["sealbox"][0] / r[0][step]["restic"][0] for r in rounds
            )
            rss_ratio = statistics.median(
                r[0][step]["sealbox"][1] / r[0][step]["restic"][1] for r in rounds
            )
            goal = GOALS[step]
            line += f"   {ratio:5.2f} ({goal}) {'ok' if ratio <= goal else 'MISSED':<6}"
            line += f"   {rss_ratio:5.2f} {'ok' if rss_ratio <= RSS_GOAL else 'MISSED'}"
        print(line)
    sizes = {t: statistics.median(r[1][t] for r in rounds) for t in tools}
    line = f"{'repository size':<18}" + "".join(f"{sizes[t] / 2**20:>44.1f} MiB" for t in tools)
    if "restic" in tools and "sealbox" in tools:
        ratio = sizes["sealbox"] / sizes["restic"]
        line += f"   {ratio:5.3f} ({SIZE_GOAL}) {'ok' if ratio <= SIZE_GOAL else 'MISSED'}"
    print(line)
    if "sealbox" in tools:
        peak = max(statistics.median(r[0][s]["sealbox"][1] for r in rounds) for s in rounds[0][0])
        verdict = ("ok" if peak <= RSS_LIMIT_MIB else "MISSED") if files >= 1_000_000 else "-"
        print(
            f"sealbox peak RSS {peak:.0f} MiB (goal: under {RSS_LIMIT_MIB:.0f} MiB at 1,000,000"
            f" files) {verdict}"
        )
    print("restic with its defaults (zstd auto); sealbox zstd level 1; each tool's own cache.")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--borg", action="store_true", help="borg too (slow at this scale)")
    parser.add_argument("--no-restic", action="store_true", help="sealbox alone")
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "results" / "scale")
    parser.add_argument("--generate-only", action="store_true")
    parser.add_argument(
        "--sealbox-src",
        type=Path,
        help="run Sealbox from this src/ directory (e.g. an older"
        " commit's `git archive`) instead of the installed one",
    )
    args = parser.parse_args()
    tools: tuple[str, ...] = ("sealbox",) + (() if args.no_restic else ("restic",))
    tools += ("borg",) if args.borg else ()
    for tool in tools[1:]:
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (scripts/install-tools.sh --bench)")
    work = args.workdir.absolute()
    pristine = work / f"tree-{args.files}-{args.seed}"
    if not pristine.exists():
        print(f"generating {args.files:,} files once into {pristine} ...", flush=True)
        generate(pristine, args.files, args.seed)
    if args.generate_only:
        return
    rounds = []
    for n in range(args.rounds):
        order = tools[n % len(tools) :] + tools[: n % len(tools)]
        print(f"round {n + 1}/{args.rounds}: {', '.join(order)}", flush=True)
        results, sizes = one_round(order, pristine, work / "run", args.seed, args.sealbox_src)
        rounds.append(({s: {t: results[s][t] for t in tools} for s in results}, sizes))
    report(rounds, tools, args.files)


if __name__ == "__main__":
    main()
