"""This node's role in an appliance cluster (``[cluster]``): leader or standby.

:class:`Leadership` is synchronous (the daemon calls it in a worker thread): :meth:`tick` looks
once (lease mode: read the lease, renew it or take it over; database and command modes: ask),
:meth:`record_start` is asked before every scheduled run and says whether it may start. Without
``[cluster]`` the node always leads.

Lease mode, the timing rules (docs/design/format.md §22):

- the leader renews every ``lease_seconds / 3``; it stops starting runs once its last successful
  renewal began more than ``2/3 * lease_seconds`` ago (two renewals missed), and steps down when
  it finds a higher counter than its own;
- a standby looks every ``min(lease_seconds / 3, 10)`` seconds and takes over once it has seen the
  same (counter, renewal) for ``lease_seconds`` on its own monotonic clock: no two nodes' wall
  clocks are ever compared. A failover therefore takes at most ``lease_seconds`` plus two looks;
- a takeover creates the next counter exclusively, so of two standbys racing one wins; the winner
  inherits the slot record from the lease it replaces and records each start in its renewal
  before the run starts.

Database and command modes ask every ``check_seconds``; their slot record is
``cluster/beat-000000000000`` at the lease destination, read on taking the lead and written
before each start.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from sealbox.backends.base import Backend
from sealbox.config.models import Config
from sealbox.destinations import lease
from sealbox.errors import ObjectExistsError, SealboxError
from sealbox.usecases.cluster import (
    ClusterStatus,
    Role,
    command_leads,
    database_leads,
    lease_backend,
)

__all__ = ["Leadership", "Notice"]

log = logging.getLogger("sealbox.daemon")


@dataclass(frozen=True)
class Notice:
    """What the daemon should alert: ``cluster.leader_changed`` or ``cluster.no_leader``
    (``clear`` ends a ``no_leader`` condition)."""

    event: Literal["cluster.leader_changed", "cluster.no_leader", "clear"]
    fields: dict[str, str | int]


def _iso(when: float | None = None) -> str:
    moment = datetime.fromtimestamp(when, UTC) if when else datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Leadership:
    config: Config
    clock: Callable[[], float] = time.monotonic
    role: Role = "standby"
    leader: str | None = None
    since: str | None = None
    mine: lease.Lease | None = None
    beat: lease.Beat | None = None
    renewed: float = 0.0  # monotonic start of the last successful renewal
    unsure_since: float | None = None
    notices: list[Notice] = field(default_factory=list)
    observer: lease.Observer = field(default_factory=lease.Observer)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._backend: Backend | None = None
        if self.config.cluster is None:
            self.role = "leader"

    # -- the view ------------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return self.config.cluster.leader if self.config.cluster else "none"

    @property
    def node(self) -> str:
        return self.config.cluster.node if self.config.cluster else self.config.appliance.name

    @property
    def lease_seconds(self) -> float:
        return float(self.config.cluster.lease_seconds) if self.config.cluster else 60.0

    @property
    def token(self) -> int | None:
        return self.mine.counter if self.mine else None

    def interval(self) -> float:
        """Seconds until the next :meth:`tick`."""
        cluster = self.config.cluster
        if cluster is None:
            return 30.0  # nothing to look at; a reload may add [cluster]
        if cluster.leader != "lease":
            return cluster.check_seconds
        if self.role == "leader":
            return self.lease_seconds / 3
        return min(self.lease_seconds / 3, 10.0)

    def leads(self) -> bool:
        """Whether this node may start scheduled runs now."""
        if self.config.cluster is None:
            return True
        if self.role != "leader":
            return False
        if self.mode == "lease":
            return self.clock() - self.renewed < self.lease_seconds * 2 / 3
        return True

    def status(self) -> ClusterStatus:
        return ClusterStatus(
            node=self.node,
            role="leader" if self.leads() else "standby",
            leader=self.leader,
            since=self.since,
            mode=self.mode,
            token=self.token,
        )

    def take_notices(self) -> list[Notice]:
        with self._lock:
            found, self.notices = self.notices, []
            return found

    def shared_slots(self) -> dict[str, float]:
        """When each job last started, as the cluster's slot record says (empty before this node
        has led, or without a destination to keep the record)."""
        return dict(self.beat.slots) if self.beat else {}

    # -- looking -------------------------------------------------------------------------------
    def tick(self) -> None:
        cluster = self.config.cluster
        if cluster is None:
            return
        with self._lock:
            if cluster.leader == "lease":
                self._tick_lease()
            else:
                self._tick_asked()

    def _unsure(self, reason: str) -> None:
        now = self.clock()
        if self.unsure_since is None:
            self.unsure_since = now
        elif now - self.unsure_since >= self.lease_seconds:
            self.notices.append(Notice("cluster.no_leader", {"node": self.node, "reason": reason}))
            self.unsure_since = now  # the notifier's condition reminds; no flood

    def _sure(self) -> None:
        if self.unsure_since is not None:
            self.unsure_since = None
            self.notices.append(Notice("clear", {}))

    def _tick_asked(self) -> None:
        cluster = self.config.cluster
        assert cluster is not None
        try:
            leads = (
                database_leads(self.config)
                if cluster.leader == "database"
                else (command_leads(self.config))
            )
        except SealboxError as exc:
            log.warning("cluster: cannot tell this node's role, standing by: %s", exc)
            self._set_standby(None, None)
            self._unsure(str(exc))
            return
        self._sure()
        if leads and self.role != "leader":
            self.role, self.leader, self.since = "leader", self.node, _iso()
            log.warning("cluster: this node (%s) leads (%s)", self.node, cluster.leader)
            self.beat = self._asked_record()
            self.notices.append(
                Notice(
                    "cluster.leader_changed",
                    {"node": self.node, "previous": "-", "counter": "-", "mode": cluster.leader},
                )
            )
        elif not leads:
            self._set_standby(None, None)

    def _asked_record(self) -> lease.Beat | None:
        """Database and command modes: the shared slot record, ``cluster/beat-000000000000`` at
        the destination (counter 0 is never a lease's), written by whichever node leads; None
        when there is no destination or it cannot be read (this node's history is used then)."""
        if self.config.lease_destination is None:
            return None
        try:
            found = lease.read_beat(self._lease_backend(), 0)
        except SealboxError as exc:
            log.warning("cluster: the shared slot record cannot be read: %s", exc)
            return None
        return found or lease.Beat(0, self.node)

    def _set_standby(self, leader: str | None, since: str | None) -> None:
        if self.role == "leader":
            log.warning("cluster: this node (%s) stands by; leader: %s", self.node, leader or "?")
        self.role, self.leader, self.since, self.mine = "standby", leader, since, None

    def _lease_backend(self) -> Backend:
        if self._backend is None:
            self._backend = lease_backend(self.config)
        return self._backend

    def _tick_lease(self) -> None:
        try:
            backend = self._lease_backend()
            held = lease.current(backend)
            beat = lease.read_beat(backend, held.counter) if held else None
        except SealboxError as exc:
            log.warning("cluster: cannot read the lease: %s", exc)
            self._unsure(f"cannot read the lease: {exc}")
            if self.role == "leader" and not self.leads():
                self._set_standby(None, None)
            return
        self._sure()
        if self.mine is not None:
            if held is None or held.counter != self.mine.counter:
                self._set_standby(held.node if held else None, held.taken if held else None)
                return
            self._renew(backend)
            return
        if held is None:
            self._take_over(backend, 1, None)
            return
        self.leader, self.since = held.node, held.taken
        unchanged = self.observer.observe(held.counter, beat.seq if beat else -1, self.clock())
        if unchanged >= self.lease_seconds or (beat is not None and beat.released):
            self._take_over(backend, held.counter + 1, held)

    def _renew(self, backend: Backend) -> None:
        assert self.beat is not None
        started = self.clock()
        try:
            lease.write_beat(backend, self.beat)
        except SealboxError as exc:
            log.warning("cluster: lease %d not renewed: %s", self.beat.counter, exc)
            if not self.leads():
                self._set_standby(None, None)
            return
        self.renewed = started

    def _take_over(self, backend: Backend, counter: int, previous: lease.Lease | None) -> None:
        started = self.clock()
        try:
            taken = lease.take(backend, counter, self.node)
        except ObjectExistsError:
            log.warning("cluster: another node took lease %d first", counter)
            try:
                winner = lease.current(backend)
            except SealboxError:
                return
            if winner is not None:
                self.leader, self.since = winner.node, winner.taken
            return
        except SealboxError as exc:
            log.warning("cluster: cannot take lease %d: %s", counter, exc)
            return
        # The replaced lease's slot record, read after the takeover: whatever its holder recorded
        # before it could see the new counter is in it.
        slots: dict[str, float] = {}
        if previous is not None:
            try:
                old = lease.read_beat(backend, previous.counter)
            except SealboxError as exc:
                log.warning("cluster: the slot record of lease %d: %s", previous.counter, exc)
                old = None
            slots = dict(old.slots) if old else {}
        self.mine, self.beat = taken, lease.Beat(counter, self.node, slots=slots)
        try:
            lease.write_beat(backend, self.beat)
        except SealboxError as exc:
            log.warning("cluster: lease %d taken, its first renewal failed: %s", counter, exc)
        self.renewed = started
        self.role, self.leader, self.since = "leader", self.node, taken.taken
        log.warning(
            "cluster: this node (%s) took lease %d from %s",
            self.node,
            counter,
            previous.node if previous else "nobody",
        )
        self.notices.append(
            Notice(
                "cluster.leader_changed",
                {
                    "node": self.node,
                    "previous": previous.node if previous else "-",
                    "counter": counter,
                    "mode": "lease",
                },
            )
        )

    def record_start(self, job: str, started: float) -> bool:
        """Before a scheduled run: whether it may start. In lease mode the lease is checked again
        at the destination and the start is recorded in the renewal first (a new leader then never
        runs that slot again); False if either fails."""
        if self.config.cluster is None:
            return True
        with self._lock:
            if not self.leads():
                return False
            if self.mode != "lease":
                return self._record_asked(job, started)
            assert self.mine is not None and self.beat is not None
            try:
                backend = self._lease_backend()
                held = lease.current(backend)
                if held is None or held.counter != self.mine.counter:
                    self._set_standby(held.node if held else None, held.taken if held else None)
                    return False
                self.beat.slots[job] = started
                began = self.clock()
                lease.write_beat(backend, self.beat)
                self.renewed = began
            except SealboxError as exc:
                log.warning("cluster: %s not started, the lease could not be updated: %s", job, exc)
                return False
            return True

    def _record_asked(self, job: str, started: float) -> bool:
        if self.config.lease_destination is None:
            return True  # nowhere to share it: each node's own history
        try:
            backend = self._lease_backend()
            record = lease.read_beat(backend, 0) or lease.Beat(0, self.node)
            record.node = self.node
            record.slots[job] = started
            lease.write_beat(backend, record)
        except SealboxError as exc:
            log.warning(
                "cluster: %s not started, the slot record could not be updated: %s", job, exc
            )
            return False
        self.beat = record
        return True

    def reconfigured(self, config: Config) -> Leadership:
        """After a reload: this object with the new config when the node, the mode and the lease
        destination stay (the lease held stays held: a reload is no failover); else a new one,
        which finds its role at its first look."""
        old, new = self.config.cluster, config.cluster
        same = (
            old is not None
            and new is not None
            and (old.node, old.leader) == (new.node, new.leader)
            and self.config.lease_destination == config.lease_destination
            and self.config.destinations.get(self.config.lease_destination or "")
            == config.destinations.get(config.lease_destination or "")
        )
        if same or (old is None and new is None):
            with self._lock:
                self.config = config
            return self
        self.close()
        return Leadership(config, clock=self.clock)

    def release(self) -> None:
        """On a clean stop (after the runs have stopped): mark the lease released, so a standby
        takes over at its next look instead of after ``lease_seconds``. Best effort."""
        with self._lock:
            if self.mode != "lease" or self.mine is None or self.beat is None:
                return
            self.beat.released = True
            try:
                lease.write_beat(self._lease_backend(), self.beat)
            except SealboxError as exc:
                log.warning("cluster: lease %d not released: %s", self.beat.counter, exc)
                return
            log.warning("cluster: lease %d released", self.beat.counter)
            self._set_standby(None, None)

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
