"""The lease's timing rules (daemon/leadership.py) on a real local destination, with the
monotonic clock in the test's hands: when a standby may take over, when a leader stops leading,
what a node does when it cannot read the lease."""

from __future__ import annotations

import tomllib
from pathlib import Path

from sealbox.backends import open_backend
from sealbox.config.load import validate
from sealbox.daemon.leadership import Leadership
from sealbox.destinations import lease

LEASE = 30


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _node(tmp_path: Path, name: str, clock: Clock, remote: Path | None = None) -> Leadership:
    remote = remote or tmp_path / "remote"
    remote.mkdir(exist_ok=True)
    text = f"""
[appliance]
name = "pam-01"
state_dir = "{tmp_path / name}"
[destinations.offsite]
url = "file://{remote}"
allow_on_appliance = true
[cluster]
node = "{name}"
lease_seconds = {LEASE}
lease_destination = "offsite"
"""
    config, problems = validate(tomllib.loads(text))
    assert config is not None and problems == [], problems
    return Leadership(config, clock=clock)


def test_a_standby_takes_over_only_after_the_lease_went_unrenewed_for_lease_seconds(tmp_path):
    clock = Clock()
    a, b = _node(tmp_path, "a", clock), _node(tmp_path, "b", clock)
    a.tick()
    b.tick()
    assert (a.status()["role"], b.status()["role"]) == ("leader", "standby")
    assert b.status()["leader"] == "a" and a.token == 1
    assert (a.interval(), b.interval()) == (LEASE / 3, 10.0)
    for _ in range(10):  # a renews on time: b never takes over, however long
        clock.now += LEASE / 3
        a.tick()
        b.tick()
    assert b.status()["role"] == "standby"
    # a dies. b saw its last renewal now; 29.9 s later it still waits, at 30 s it takes over.
    clock.now += LEASE - 0.1
    b.tick()
    assert b.status()["role"] == "standby"
    clock.now += 0.1
    b.tick()
    assert b.status()["role"] == "leader" and b.token == 2
    assert [n.event for n in b.take_notices()] == ["cluster.leader_changed"]
    # a comes back: it sees a higher counter than its own and stands by.
    a.tick()
    assert a.status()["role"] == "standby" and a.status()["leader"] == "b"


def test_a_leader_that_cannot_renew_stops_leading_before_anyone_may_take_over(tmp_path):
    clock = Clock()
    remote = tmp_path / "remote"
    a = _node(tmp_path, "a", clock, remote)
    a.tick()
    assert a.leads() and [n.event for n in a.take_notices()] == ["cluster.leader_changed"]
    remote.rename(tmp_path / "gone")  # the destination is unreachable now
    clock.now += LEASE * 2 / 3 - 0.1
    a.tick()
    assert a.leads()  # within two renewal periods: still the leader
    clock.now += 0.2
    assert not a.leads()  # past 2/3 of the lease: no run starts, though nobody took over yet
    assert not a.record_start("system", 1.0)
    a.tick()
    assert a.status()["role"] == "standby"
    clock.now += LEASE
    a.tick()
    assert [n.event for n in a.take_notices()] == ["cluster.no_leader"]
    (tmp_path / "gone").rename(remote)
    a.tick()
    assert [n.event for n in a.take_notices()] == ["clear"]


def test_a_start_is_recorded_with_the_lease_and_inherited_by_the_next_leader(tmp_path):
    clock = Clock()
    a, b = _node(tmp_path, "a", clock), _node(tmp_path, "b", clock)
    a.tick()
    b.tick()
    assert a.record_start("system", 1234.5)
    assert not b.record_start("system", 1234.5)  # a standby starts nothing
    backend = open_backend(f"file://{tmp_path / 'remote'}")
    beat = lease.read_beat(backend, 1)
    assert beat is not None and beat.slots == {"system": 1234.5}
    b.tick()  # the start was a renewal too: b's wait starts again from here
    clock.now += LEASE
    b.tick()
    assert b.token == 2 and b.shared_slots() == {"system": 1234.5}
    assert not a.record_start("secrets", 2000.0)  # the lease is b's now: checked at the start
    assert a.status()["role"] == "standby"


def test_a_leader_that_stops_cleanly_releases_the_lease_for_an_immediate_takeover(tmp_path):
    clock = Clock()
    a, b = _node(tmp_path, "a", clock), _node(tmp_path, "b", clock)
    a.tick()
    b.tick()
    a.release()
    assert a.status()["role"] == "standby"
    clock.now += 1  # one look later, not lease_seconds later
    b.tick()
    assert b.status()["role"] == "leader" and b.token == 2


def test_a_reload_keeps_the_lease_unless_the_node_or_its_destination_changes(tmp_path):
    clock = Clock()
    a = _node(tmp_path, "a", clock)
    a.tick()
    assert a.token == 1
    longer = a.config.model_copy(
        update={"cluster": a.config.cluster.model_copy(update={"lease_seconds": 90})}
    )
    same = a.reconfigured(longer)
    assert same is a and same.leads() and same.lease_seconds == 90
    renamed = a.config.model_copy(
        update={"cluster": a.config.cluster.model_copy(update={"node": "a2"})}
    )
    other = a.reconfigured(renamed)
    assert other is not a and not other.leads() and other.token is None


def test_the_secrets_watch_counts_a_start_by_an_earlier_leader(tmp_path):
    """Fresh secrets on a cluster: the watch's "last start" is the newer of this node's history
    and the cluster's slot record, so a change the old leader backed up is not run again."""
    from sealbox.daemon.service import Daemon

    config = tmp_path / "sealbox.toml"
    config.write_text(
        f"""
[appliance]
name = "pam-01"
state_dir = "{tmp_path / "state"}"
[destinations.offsite]
url = "file://{tmp_path / "remote"}"
allow_on_appliance = true
[cluster]
node = "b"
[secrets]
destination = "offsite"
[[secrets.sources]]
type = "json"
path = "{tmp_path / "vault.json"}"
"""
    )
    daemon = Daemon(config)
    try:
        watcher = daemon._watcher()
        assert watcher.last_start() is None
        daemon.leadership.beat = lease.Beat(2, "b", slots={"secrets": 1234.5})
        assert watcher.last_start() == 1234.5
        daemon.history.start("secrets", "schedule", 2000.0)
        assert watcher.last_start() == 2000.0
    finally:
        daemon.history.close()
