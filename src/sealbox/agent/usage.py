"""Bytes used per namespace, the basis of ``--quota`` and of the capacity endpoint.

A namespace is measured once, by walking its directory when it is first used; from then on every
commit, replacement and deletion updates its count. An upload in flight holds a reservation (its
declared length, or the bytes received so far), so two uploads that each fit but together do not
cannot both pass. Every check-and-update runs on the event loop with no ``await`` between the
check and the update, which makes it atomic; the lock only keeps two first uses of a namespace
from measuring it twice. Files changed behind the agent's back (by hand, on the storage host) are
seen at the next start.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["QuotaExceeded", "Reservation", "Usage", "objects"]


def objects(base: Path) -> Iterator[tuple[str, os.stat_result]]:
    """Every object below ``base`` as (name, lstat): regular files only, hidden names (temporary
    uploads, the agent's own state) skipped, symlinks never followed."""
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel = os.path.relpath(dirpath, base)
        for filename in filenames:
            if filename.startswith("."):
                continue
            try:
                st = os.lstat(os.path.join(dirpath, filename))
            except FileNotFoundError:  # deleted while we walked
                continue
            if stat.S_ISREG(st.st_mode):
                yield (filename if rel == "." else f"{rel}/{filename}"), st


class QuotaExceeded(Exception):
    """The namespace's quota cannot take these bytes; the message names used and quota."""


@dataclass
class Reservation:
    namespace: str
    size: int = 0


class Usage:
    def __init__(self, root: Path, quota: int | None) -> None:
        self.root, self.quota = root, quota
        self._used: dict[str, int] = {}
        self._reserved: dict[str, int] = {}
        self._lock = asyncio.Lock()

    async def used(self, namespace: str) -> int:
        """Committed bytes of the namespace (measured on first use)."""
        if namespace not in self._used:
            async with self._lock:
                if namespace not in self._used:
                    base = self.root / namespace
                    total = await asyncio.to_thread(
                        lambda: sum(st.st_size for _, st in objects(base))
                    )
                    self._used[namespace] = total
        return self._used[namespace]

    def reserved(self, namespace: str) -> int:
        return self._reserved.get(namespace, 0)

    async def reserve(self, namespace: str, size: int) -> Reservation:
        """A reservation of ``size`` bytes; raises QuotaExceeded if they do not fit."""
        await self.used(namespace)
        reservation = Reservation(namespace)
        self.grow(reservation, size)
        return reservation

    def grow(self, reservation: Reservation, more: int) -> None:
        """Reserve ``more`` bytes (an upload without Content-Length, as they arrive)."""
        self._check(reservation, more)
        reservation.size += more
        self._reserved[reservation.namespace] = self.reserved(reservation.namespace) + more

    def admit(self, reservation: Reservation, delta: int) -> None:
        """The re-check before a commit that grows the namespace by ``delta`` bytes (the new
        object's size minus what it replaces); raises QuotaExceeded."""
        self._check(reservation, delta - reservation.size)

    def commit(self, reservation: Reservation, delta: int) -> None:
        """The object is in place: its bytes move from reserved to used."""
        self.release(reservation)
        self._used[reservation.namespace] += delta

    def release(self, reservation: Reservation) -> None:
        """Give the reservation back (idempotent: every failure path calls it)."""
        if reservation.size:
            self._reserved[reservation.namespace] -= reservation.size
            reservation.size = 0

    def removed(self, namespace: str, size: int) -> None:
        if namespace in self._used:
            self._used[namespace] -= size

    def _check(self, reservation: Reservation, more: int) -> None:
        if self.quota is None or more <= 0:
            return
        namespace = reservation.namespace
        used, reserved = self._used[namespace], self.reserved(namespace)
        if used + reserved + more > self.quota:
            others = reserved - reservation.size
            in_flight = f" (+{others} in uploads under way)" if others else ""
            raise QuotaExceeded(
                f"quota exceeded: namespace {namespace} uses {used}{in_flight} of {self.quota}"
                f" bytes; {reservation.size + more} more do not fit"
            )
