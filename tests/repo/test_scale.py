"""A small version of the scale scenario (bench/scale_bench.py has the figures): tens of thousands
of small files in deep directories back up in memory that does not grow with the number of files,
and restore identical.

Memory is the peak RSS of the `sealbox repo backup` process (``wait4``), at two sizes: what grows
between them, per file, must stay well below what keeping a Python object per file costs (the
whole tree in memory, a dict of every file in the files cache, an index of ``bytes`` keys: 0.7 to
2.5 KB a file). What is left grows per blob, packed: the index and the reference list, about 100
bytes at scale.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

SMALL, LARGE = 20_000, 45_000
# Bytes of peak RSS a backup may add per file. Measured: ~290 without changes (packed ids and
# index records, and bucket buffers still filling at this size), ~900 for the initial run, whose
# pack buffers and per-pack lists (bounded, but not yet at their bound at 20,000 files) grow
# too; before streaming it was 2,568 and about 2,500.
NO_CHANGE_BOUND = 512
INITIAL_BOUND = 1536


def _tree(root: Path, files: int, seed: int) -> Path:
    """Deep directories of 25 small files (100-400 bytes; every 50th a duplicate)."""
    rng = random.Random(seed)
    made = 0
    while made < files:
        parts = [f"d{rng.randrange(30)}" for _ in range(rng.randint(3, 6))]
        directory = root.joinpath(*parts, f"leaf{made}")
        directory.mkdir(parents=True)
        for n in range(min(25, files - made)):
            data = b"dup\n" * 40 if made % 50 == 0 else rng.randbytes(rng.randint(100, 400))
            fd = os.open(directory / f"conf-{n}.txt", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, data)
            os.close(fd)
            made += 1
    return root


# Started through a small Python process: a child of pytest would report at least pytest's own
# peak RSS (it is vforked from it, and the kernel keeps the larger high-water mark at exec).
_MEASURE = (
    "import os, subprocess, sys\n"
    "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
    "_, status, usage = os.wait4(p.pid, 0)\n"
    "print(usage.ru_maxrss, os.waitstatus_to_exitcode(status))\n"
)


def _run(argv: list[str], env: dict[str, str]) -> float:
    """Peak RSS (MiB) of a command that must succeed."""
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, *argv], env=env, capture_output=True, check=False
    )
    rss_kib, code = proc.stdout.split()
    assert int(code) == 0, proc.stderr.decode()
    return int(rss_kib) / 1024


def _listing(root: Path) -> dict[str, tuple[bytes, int]]:
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath, name)
            out[str(path.relative_to(root))] = (path.read_bytes(), path.stat().st_mode)
    return out


def test_backup_memory_does_not_grow_per_file_and_the_restore_is_identical(env, tmp_path):
    environ = {**os.environ, "SEALBOX_STATE_DIR": str(env.state)}
    sealbox = [sys.executable, "-m", "sealbox", "repo"]
    peaks: dict[int, tuple[float, float]] = {}
    for files in (SMALL, LARGE):  # a repository each: the index grows with the repository
        url = env.url if files == LARGE else f"{env.url}-{files}"
        if url != env.url:
            _run([*sealbox, "init", url, "--recipient", env.recipient], environ)
        src = _tree(tmp_path / f"src-{files}", files, seed=files)
        initial = _run([*sealbox, "backup", url, str(src)], environ)
        unchanged = _run([*sealbox, "backup", url, str(src)], environ)
        peaks[files] = (initial, unchanged)
    extra = LARGE - SMALL
    initial_growth = (peaks[LARGE][0] - peaks[SMALL][0]) * 2**20 / extra
    no_change_growth = (peaks[LARGE][1] - peaks[SMALL][1]) * 2**20 / extra
    assert no_change_growth < NO_CHANGE_BOUND, f"no-change backup: {no_change_growth:.0f} B/file"
    assert initial_growth < INITIAL_BOUND, f"initial backup: {initial_growth:.0f} B/file"

    out = tmp_path / "out"
    restore = [*sealbox, "restore", env.url, "latest", str(out)]
    _run([*restore, "--identity", str(env.identity_file)], environ)
    src = tmp_path / f"src-{LARGE}"
    assert _listing(out / str(src).lstrip("/")) == _listing(src)
