"""``agent scrub``: the storage host verifies and repairs the repositories it stores, key-free.

Every repository below the agent's root (a directory holding a repository ``config``, or the
parity of one) is scrubbed through the local backend under a shared lock (a prune from the
appliance waits; backups go on): each object checked against its name and parity, and with
``repair`` rebuilt, verified and written back (format.md §9a). An append-only agent refuses the
appliance's repairs over HTTP; here, on the host, the repair is the storage side's own job.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sealbox.backends.local import LocalBackend
from sealbox.repo.heal import HealReport, scrub
from sealbox.repo.locks import Lock
from sealbox.repo.parity import DEFAULT_POLICY

__all__ = ["Scrubbed", "repositories", "scrub_root"]

# Folders of a repository (never repositories themselves) and the agent's own state: not walked.
_SKIP = {"data", "index", "snapshots", "refs", "keys", "datakeys", "parity", "locks", "holds"}
_SKIP |= {"recordings", ".sealbox-agent"}
MAX_DEPTH = 8  # namespace / destination path / repo


@dataclass
class Scrubbed:
    path: Path  # the repository, relative to the root
    report: HealReport
    seconds: float


def _is_repository(path: Path) -> bool:
    return (path / "config").is_file() or (path / "parity" / "config").is_file()


def repositories(root: Path) -> Iterator[Path]:
    """Every repository below ``root`` (sorted, depth-first), without following symlinks."""

    def walk(path: Path, depth: int) -> Iterator[Path]:
        if _is_repository(path):
            yield path
            return
        if depth >= MAX_DEPTH:
            return
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if entry.name not in _SKIP and entry.is_dir(follow_symlinks=False):
                yield from walk(Path(entry.path), depth + 1)

    yield from walk(root, 0)


def scrub_root(root: Path, repair: bool) -> list[Scrubbed]:
    """Scrub (with ``repair``: and heal) every repository below ``root``."""
    done: list[Scrubbed] = []
    for path in repositories(root):
        backend = LocalBackend(path)
        started = time.monotonic()
        try:
            with Lock(backend, exclusive=False, purpose="scrub"):
                report = scrub(backend, repair=repair, policy=DEFAULT_POLICY)
        finally:
            backend.close()
        done.append(Scrubbed(path.relative_to(root), report, time.monotonic() - started))
    return done
