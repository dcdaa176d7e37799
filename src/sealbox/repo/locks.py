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
from datetime import UTC, datetime
from typing import Any

import orjson

from sealbox.backends.base import Backend
from sealbox.errors import DestinationError, LockedError, NotFoundError

__all__ = ["STALE_AFTER", "Lock", "LockedError"]

STALE_AFTER = 30 * 60
REFRESH_EVERY = 5 * 60


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale(lock: dict[str, Any], now: float) -> bool:
    if now - float(lock.get("refreshed", 0)) > STALE_AFTER:
        return True
    return lock.get("host") == socket.gethostname() and not _alive(int(lock.get("pid", 0)))


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
                other: Any = orjson.loads(self.backend.get(info.name))
            except (NotFoundError, orjson.JSONDecodeError):
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
