"""Repository locks: many shared holders (backup, check) or one exclusive holder (prune).

A lock is an object ``locks/<random>`` holding JSON {host, pid, time, exclusive}. It is refreshed
every few minutes during long runs; a lock not refreshed for ``STALE_AFTER`` seconds, or held by a
process of this host that no longer runs, is stale and removed by the next taker. Taking a lock:
write ours, then list; if a conflicting live lock exists, remove ours and fail. Two takers racing
both see each other and both back off, never both proceed.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import orjson

from sealbox.backends.base import Backend, read_bounded
from sealbox.errors import CorruptFileError, DestinationError, LockedError, NotFoundError

__all__ = ["STALE_AFTER", "Lock", "LockedError", "reading_lock"]

STALE_AFTER = 30 * 60
REFRESH_EVERY = 5 * 60
MAX_LOCK = 64 << 10


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # no such process (a pid beyond C's long)
        return False
    except PermissionError:
        return True
    return True


FUTURE_SLACK = 10 * 60  # clock skew tolerated in a lock's refresh time


def _stale(lock: dict[str, Any], now: float) -> bool:
    """A lock not refreshed for STALE_AFTER, held by a dead process of this host, or claiming
    a refresh time in the future (a lock that could never go stale would block prune forever)."""
    try:
        refreshed = float(lock.get("refreshed", 0))
        pid = int(lock.get("pid", 0))
    except (TypeError, ValueError):
        return True
    if now - refreshed > STALE_AFTER or refreshed > now + FUTURE_SLACK:
        return True
    return lock.get("host") == socket.gethostname() and not _alive(pid)


class Lock:
    def __init__(self, backend: Backend, exclusive: bool, purpose: str) -> None:
        self.backend, self.exclusive, self.purpose = backend, exclusive, purpose
        self.name = f"locks/{secrets.token_hex(16)}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _body(self) -> bytes:
        now = time.time()
        return orjson.dumps(
            {
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "purpose": self.purpose,
                "exclusive": self.exclusive,
                "time": datetime.now(UTC).isoformat(timespec="seconds"),
                "refreshed": now,
            }
        )

    def acquire(self, wait: float = 10.0) -> Lock:
        """Take the lock, retrying for up to ``wait`` seconds; LockedError if it stays taken."""
        deadline = time.monotonic() + wait
        while True:
            try:
                return self._try()
            except LockedError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.2 + random.random() * 0.5)  # noqa: S311 - jitter, not crypto

    def _try(self) -> Lock:
        self.backend.put(self.name, self._body(), exclusive=True)
        now = time.time()
        for info in self.backend.list("locks/"):
            if info.name == self.name:
                continue
            try:
                other: Any = orjson.loads(read_bounded(self.backend, info.name, MAX_LOCK))
            except NotFoundError:
                continue
            except (CorruptFileError, orjson.JSONDecodeError):
                other = None
            if not isinstance(other, dict):
                # Junk under locks/ holds nobody back; it is removed once it is old.
                if now - info.mtime > STALE_AFTER:
                    self.backend.delete(info.name)
                continue
            if _stale(other, now):
                self.backend.delete(info.name)
                continue
            if self.exclusive or other.get("exclusive"):
                self.backend.delete(self.name)
                raise LockedError(
                    f"repository is locked by {other.get('purpose', '?')} on {other.get('host')}"
                    f" (pid {other.get('pid')}, since {other.get('time')}); try again later"
                    " (a lock not refreshed for 30 min is taken over)"
                )
        self._thread = threading.Thread(target=self._refresh, name="sealbox-lock", daemon=True)
        self._thread.start()
        return self

    def _refresh(self) -> None:
        while not self._stop.wait(REFRESH_EVERY):
            with contextlib.suppress(DestinationError):  # the run's own I/O reports it
                self.backend.put(self.name, self._body())

    def release(self) -> None:
        self._stop.set()
        with contextlib.suppress(DestinationError):
            self.backend.delete(self.name)

    def __enter__(self) -> Lock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextlib.contextmanager
def reading_lock(
    backend: Backend, purpose: str, warn: Callable[[str], None]
) -> Iterator[Lock | None]:
    """A shared lock for a reader (restore, verify), so a prune cannot delete what it reads.
    A destination that refuses writes (read-only credentials, a read-only mount) still lets
    custodians read: the reader then goes on without the lock, and says so."""
    lock = Lock(backend, exclusive=False, purpose=purpose)
    try:
        lock.acquire()
    except LockedError:
        raise
    except DestinationError as exc:
        warn(f"could not take a shared lock ({exc}): a prune running now could remove data read")
        yield None
        return
    try:
        yield lock
    finally:
        lock.release()
