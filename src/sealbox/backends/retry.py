"""Retries, once, around any backend (as restic does): backends say whether a failure may pass
(:class:`~sealbox.errors.TransientDestinationError`: a dropped connection, a timeout, a server's
5xx or 429) and never retry themselves; :class:`Retrying` retries those with exponential backoff
and jitter, and leaves every other error alone.

Retrying is safe because every operation is idempotent but one: an exclusive ``put`` whose first
attempt did land, with only its answer lost. The retry then finds the name taken
(:class:`~sealbox.errors.ObjectExistsError`); the object is read back, and the put counts as done
only when the stored bytes are exactly the ones given (content-named objects and lock names are
unique, so equal bytes mean it was this put's own).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from sealbox.backends.base import Backend, Capacity, ObjectInfo
from sealbox.errors import ObjectExistsError, TransientDestinationError

__all__ = ["DEFAULT_ATTEMPTS", "Retrying", "with_retries"]

T = TypeVar("T")
DEFAULT_ATTEMPTS = 7  # the first try and six retries: 12 to 24 s of waiting in all
FIRST_CONTACT_ATTEMPTS = 2  # until the destination has answered once: it is likely down
BASE_DELAY = 0.5
MAX_DELAY = 8.0


class Retrying:
    """A backend whose transient failures are retried; it is the wrapped backend otherwise
    (attributes such as ``append_only`` or ``round_trips`` pass through)."""

    def __init__(
        self,
        inner: Backend,
        attempts: int = DEFAULT_ATTEMPTS,
        base_delay: float = BASE_DELAY,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.inner, self.attempts, self.base_delay, self._sleep = inner, attempts, base_delay, sleep
        self.retries = 0  # how many retries this backend made (for tests and reports)
        # A destination that never answered is most likely down (a probe, `status`): one quick
        # retry, then the error. One that answered before and fails mid-run is likely a blip.
        self.contacted = False

    def _limit(self) -> int:
        return self.attempts if self.contacted else min(self.attempts, FIRST_CONTACT_ATTEMPTS)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def _run(self, operation: Callable[[], T]) -> T:
        attempt = 0
        while True:
            attempt += 1
            try:
                result = operation()
            except TransientDestinationError:
                if attempt >= self._limit():
                    raise
                self._pause(attempt)
            except Exception:
                self.contacted = True  # an answer (not found, refused): the destination is up
                raise
            else:
                self.contacted = True
                return result

    @property
    def display(self) -> str:
        return self.inner.display

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Streamed (a listing can hold millions of names): retried while nothing has been
        handed out yet; a failure after that is raised, since a restarted listing would hand
        out some names twice."""
        attempt = 0
        while True:
            attempt += 1
            started = False
            try:
                for info in self.inner.list(prefix):
                    started = True
                    yield info
            except TransientDestinationError:
                if started or attempt >= self._limit():
                    raise
                self._pause(attempt)
            else:
                self.contacted = True
                return

    def _pause(self, attempt: int) -> None:
        delay = min(MAX_DELAY, self.base_delay * 2 ** (attempt - 1))
        self._sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 (jitter, not a secret)
        self.retries += 1

    def stat(self, name: str) -> ObjectInfo:
        return self._run(lambda: self.inner.stat(name))

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        return self._run(lambda: self.inner.get(name, offset, length))

    def put(
        self, name: str, data: bytes | bytearray | memoryview, *, exclusive: bool = False
    ) -> None:
        failed_once = False

        def attempt() -> None:
            nonlocal failed_once
            try:
                self.inner.put(name, data, exclusive=exclusive)
            except TransientDestinationError:
                failed_once = True
                raise
            except ObjectExistsError:
                # Only after a failed attempt can the name be our own; and only equal bytes
                # say so (never replace or accept what someone else stored).
                if not failed_once or self.inner.get(name) != bytes(data):
                    raise

        self._run(attempt)

    def flush(self) -> None:
        self._run(self.inner.flush)

    def delete(self, name: str) -> None:
        self._run(lambda: self.inner.delete(name))

    def capacity(self) -> Capacity:
        return self._run(self.inner.capacity)

    def close(self) -> None:
        self.inner.close()


def with_retries(backend: Backend, attempts: int = DEFAULT_ATTEMPTS) -> Backend:
    """``backend`` with retries (not wrapped twice)."""
    return backend if isinstance(backend, Retrying) else Retrying(backend, attempts)
