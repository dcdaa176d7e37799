"""The cluster lease at a destination (docs/design/format.md, "Cluster lease").

Two kinds of small JSON objects under ``cluster/``:

- ``cluster/lease-<counter>`` (12 digits): a takeover. Created exclusively (S3
  ``If-None-Match: *``, the agent's exclusive put, a hard link on SFTP and local directories), never
  replaced, so of two nodes racing for the same counter exactly one wins. The highest counter
  present is the current lease; its number is the fencing token.
- ``cluster/beat-<counter>``: the holder's renewals of that lease, replaced every renewal (a
  sequence number that grows) and carrying the shared slot record: when each scheduled job last
  started, so that a new leader runs a missed slot once and never a slot twice.

Nothing here compares clocks of two nodes: a standby measures how long the beat has not changed
on its own monotonic clock (:class:`Observer`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from sealbox.backends.base import Backend, read_bounded
from sealbox.errors import CorruptFileError, NotFoundError

__all__ = [
    "BEAT",
    "FORMAT",
    "LEASE",
    "Beat",
    "Lease",
    "Observer",
    "current",
    "read_beat",
    "take",
    "write_beat",
]

FORMAT = "sealbox-lease-1"
LEASE = "cluster/lease-"
BEAT = "cluster/beat-"
MAX_OBJECT = 64 * 1024  # a lease or beat is a few hundred bytes; never read more
_COUNTER = re.compile(r"^cluster/lease-([0-9]{12})$")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Lease:
    """One takeover: ``node`` leads with fencing token ``counter`` since ``taken`` (its clock)."""

    counter: int
    node: str
    taken: str

    def encode(self) -> bytes:
        return orjson.dumps(
            {"format": FORMAT, "counter": self.counter, "node": self.node, "taken": self.taken}
        )

    @classmethod
    def decode(cls, data: bytes, counter: int) -> Lease:
        doc = _doc(data, f"{LEASE}{counter:012d}")
        node = doc.get("node")
        if doc.get("counter") != counter or not isinstance(node, str):
            raise CorruptFileError(f"{LEASE}{counter:012d}: counter or node does not match")
        return cls(counter, node, str(doc.get("taken", "")))


@dataclass
class Beat:
    """The holder's latest renewal of lease ``counter`` and the shared slot record."""

    counter: int
    node: str
    seq: int = 0
    time: str = ""  # the writer's clock: shown to people, never compared across nodes
    slots: dict[str, float] = field(default_factory=dict)  # job -> last start (epoch seconds)
    released: bool = False  # its holder stopped cleanly: a standby may take over at once

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "format": FORMAT,
                "counter": self.counter,
                "node": self.node,
                "seq": self.seq,
                "time": self.time,
                "slots": self.slots,
                "released": self.released,
            }
        )

    @classmethod
    def decode(cls, data: bytes, counter: int) -> Beat:
        name = f"{BEAT}{counter:012d}"
        doc = _doc(data, name)
        slots, node, seq = doc.get("slots", {}), doc.get("node"), doc.get("seq")
        if (
            doc.get("counter") != counter
            or not isinstance(node, str)
            or not isinstance(seq, int)
            or not isinstance(slots, dict)
            or not all(isinstance(v, int | float) for v in slots.values())
        ):
            raise CorruptFileError(f"{name}: not a lease renewal")
        released = doc.get("released") is True
        return cls(counter, node, seq, str(doc.get("time", "")), dict(slots), released)


def _doc(data: bytes, name: str) -> dict[str, object]:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CorruptFileError(f"{name}: not JSON") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CorruptFileError(f"{name}: not a {FORMAT} object")
    return doc


def current(backend: Backend) -> Lease | None:
    """The lease with the highest counter at the destination, or None when there is none.
    Names that do not have the lease's shape are ignored (junk cannot pose as a counter)."""
    counters = [int(m.group(1)) for o in backend.list(LEASE) if (m := _COUNTER.match(o.name))]
    while counters:
        top = max(counters)
        try:
            return Lease.decode(read_bounded(backend, f"{LEASE}{top:012d}", MAX_OBJECT), top)
        except NotFoundError:  # deleted under us (by an operator): the next one down
            counters.remove(top)
    return None


def read_beat(backend: Backend, counter: int) -> Beat | None:
    """The renewal of lease ``counter``, None when its holder never renewed it."""
    try:
        data = read_bounded(backend, f"{BEAT}{counter:012d}", MAX_OBJECT)
    except NotFoundError:
        return None
    return Beat.decode(data, counter)


def take(backend: Backend, counter: int, node: str) -> Lease:
    """Create lease ``counter`` for ``node``, exclusively: ObjectExistsError when another node
    took that counter first (the loser of a race)."""
    lease = Lease(counter, node, _now())
    backend.put(f"{LEASE}{counter:012d}", lease.encode(), exclusive=True)
    backend.flush()
    return lease


def write_beat(backend: Backend, beat: Beat) -> None:
    """Replace the renewal of ``beat.counter`` (its ``seq`` one more, its time now)."""
    beat.seq += 1
    beat.time = _now()
    backend.put(f"{BEAT}{beat.counter:012d}", beat.encode())
    backend.flush()


@dataclass
class Observer:
    """What a standby saw of the lease, and since when (its own monotonic clock) it has not
    changed. A lease whose (counter, seq) stayed the same for ``lease_seconds`` is expired."""

    seen: tuple[int, int] | None = None
    since: float = 0.0

    def observe(self, counter: int, seq: int, now: float) -> float:
        """Record what was read at ``now`` (monotonic seconds); how long it has been unchanged."""
        if self.seen != (counter, seq):
            self.seen, self.since = (counter, seq), now
        return now - self.since
