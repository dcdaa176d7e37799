"""A small version of the scale scenario (bench/scale_bench.py has the figures): tens of thousands
of small files in deep directories back up in memory that does not grow with the number of files,
and restore identical.

Memory is the peak RSS of the `sealbox repo backup` process (``wait4``), at two sizes: what grows
between them, per file, must stay well below what keeping a Python object per file costs (the
whole tree in memory, a dict of every file in the files cache, an index of ``bytes`` keys: 0.7 to
2.5 KB a file). What is left grows per blob, packed: the index and the reference list, about 100
bytes.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

SMALL, LARGE = 20_000, 45_000
# Bytes of peak RSS a backup may add per file: packed ids and index records need ~100.
NO_CHANGE_BOUND = 512
INITIAL_BOUND = 1024  # the initial run also fills pack buffers, whose number varies with timing


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


def _run(argv: list[str], env: dict[str, str]) -> float:
    """Peak RSS (MiB) of a command that must succeed."""
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert os.waitstatus_to_exitcode(status) == 0, err
    return usage.ru_maxrss / 1024


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
