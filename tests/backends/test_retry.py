"""Retries around any backend (backends/retry.py): transient failures are retried with backoff,
permanent ones never; an exclusive put whose answer was lost is recognised by its bytes; a
listing is retried only before it handed anything out. Then the real thing: an agent that goes
away in the middle of a backup and comes back."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from sealbox.backends import open_backend
from sealbox.backends.base import ObjectInfo
from sealbox.backends.local import LocalBackend
from sealbox.backends.retry import MAX_DELAY, Retrying, with_retries
from sealbox.crypto import agekeys
from sealbox.errors import DestinationError, ObjectExistsError, TransientDestinationError
from sealbox.repo.backup import run_backup
from sealbox.repo.check import run_check
from sealbox.repo.repository import Repository
from tests.conftest import make_tree


class Faulty:
    """A real local backend with failures injected in front of it: ``fail[op]`` transient
    failures before each call of ``op`` goes through; ``lose_answer`` makes a put land and then
    fail (the answer lost on the way back)."""

    def __init__(self, inner: LocalBackend) -> None:
        self.inner = inner
        self.fail: dict[str, int] = {}
        self.calls: dict[str, int] = {}
        self.lose_answer = 0
        self.permanent: set[str] = set()
        self.list_fail_after: int | None = None

    @property
    def display(self) -> str:
        return self.inner.display

    def _enter(self, op: str) -> None:
        self.calls[op] = self.calls.get(op, 0) + 1
        if op in self.permanent:
            raise DestinationError(f"{op}: permission denied")
        if self.fail.get(op, 0) > 0:
            self.fail[op] -= 1
            raise TransientDestinationError(f"{op}: connection reset")

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        self._enter("get")
        return self.inner.get(name, offset, length)

    def put(self, name: str, data: bytes, *, exclusive: bool = False) -> None:
        self._enter("put")
        self.inner.put(name, data, exclusive=exclusive)
        if self.lose_answer > 0:
            self.lose_answer -= 1
            raise TransientDestinationError("put: connection reset after the request was sent")

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        self._enter("list")
        for n, info in enumerate(self.inner.list(prefix)):
            if self.list_fail_after is not None and n == self.list_fail_after:
                self.list_fail_after = None
                raise TransientDestinationError("list: connection reset")
            yield info

    def stat(self, name: str) -> ObjectInfo:
        self._enter("stat")
        return self.inner.stat(name)

    def flush(self) -> None:
        self.inner.flush()

    def delete(self, name: str) -> None:
        self._enter("delete")
        self.inner.delete(name)

    def capacity(self):
        return self.inner.capacity()

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def faulty(tmp_path):
    return Faulty(LocalBackend(tmp_path / "dest"))


def _retrying(backend, attempts: int = 4) -> Retrying:
    return Retrying(backend, attempts=attempts, sleep=lambda s: None)


def test_a_transient_failure_is_retried_and_a_permanent_one_is_not(faulty):
    backend = _retrying(faulty)
    backend.put("a/b", b"data")
    faulty.fail["get"] = 2
    assert backend.get("a/b") == b"data"
    assert faulty.calls["get"] == 3 and backend.retries == 2
    faulty.permanent.add("stat")
    with pytest.raises(DestinationError, match="permission denied"):
        backend.stat("a/b")
    assert faulty.calls["stat"] == 1, "a permanent failure is not retried"


def test_retries_end_and_the_last_failure_is_raised(faulty):
    backend = _retrying(faulty, attempts=3)
    backend.delete("x")  # the destination answered once
    faulty.fail["delete"] = 10
    with pytest.raises(TransientDestinationError):
        backend.delete("x")
    assert faulty.calls["delete"] == 1 + 3


def test_a_destination_that_never_answered_gets_one_quick_retry(faulty):
    """A probe or `status` of a destination that is down reports it fast."""
    backend = _retrying(faulty, attempts=7)
    faulty.fail["stat"] = 10
    with pytest.raises(TransientDestinationError):
        backend.stat("x")
    assert faulty.calls["stat"] == 2
    faulty.fail["stat"] = 0
    with pytest.raises(Exception, match="x"):  # not found: an answer all the same
        backend.stat("x")
    faulty.fail["stat"] = 5
    faulty.inner.put("x", b"1")
    assert backend.stat("x").size == 1, "after an answer, every attempt is made"


def test_backoff_grows_and_is_bounded(faulty):
    waits: list[float] = []
    backend = Retrying(faulty, attempts=6, base_delay=0.5, sleep=waits.append)
    backend.put("x", b"1")
    faulty.fail["get"] = 5
    backend.get("x")
    assert len(waits) == 5
    assert all(0.25 <= w <= 0.5 for w in waits[:1]) and all(w <= MAX_DELAY for w in waits)
    assert waits[3] > waits[0], "the waits grow"


def test_an_exclusive_put_whose_answer_was_lost_counts_as_done(faulty):
    backend = _retrying(faulty)
    backend.put("config", b"c")
    faulty.lose_answer = 1
    backend.put("snapshots/abc", b"the snapshot", exclusive=True)
    assert faulty.inner.get("snapshots/abc") == b"the snapshot"
    assert backend.retries == 1


def test_an_exclusive_put_never_accepts_someone_elses_object(faulty):
    backend = _retrying(faulty)
    faulty.inner.put("locks/l1", b"another run's lock", exclusive=True)
    with pytest.raises(ObjectExistsError):  # no failure before: the name is simply taken
        backend.put("locks/l1", b"our lock", exclusive=True)
    faulty.fail["put"] = 1  # a failed attempt first, then the name is taken by other bytes
    with pytest.raises(ObjectExistsError):
        backend.put("locks/l1", b"our lock", exclusive=True)
    assert faulty.inner.get("locks/l1") == b"another run's lock"


def test_a_listing_is_retried_only_before_it_handed_anything_out(faulty):
    for n in range(5):
        faulty.inner.put(f"data/{n}", b"x")
    backend = _retrying(faulty)
    faulty.fail["list"] = 1
    assert len(list(backend.list("data/"))) == 5
    assert backend.retries == 1
    faulty.list_fail_after = 2
    with pytest.raises(TransientDestinationError):
        list(backend.list("data/"))


def test_every_opened_backend_is_wrapped_once(tmp_path):
    backend = open_backend(f"file://{tmp_path}")
    assert isinstance(backend, Retrying)
    assert with_retries(backend) is backend
    assert backend.root == tmp_path  # attributes of the backend pass through


def test_a_backup_survives_the_agent_going_away_and_coming_back(
    agent_server, monkeypatch, tmp_path
):
    """The agent restarts in the middle of a backup (a storage host's update, a network blip):
    the run retries and completes, and the repository checks clean."""
    import secrets

    namespace = f"ns-{secrets.token_hex(4)}"
    monkeypatch.setenv("SEALBOX_AGENT_TOKEN", agent_server.token(namespace))
    monkeypatch.setenv("SEALBOX_AGENT_CA", str(agent_server.cert))
    url = f"{agent_server.base}/{namespace}"
    identity = agekeys.identity_from_secret(agekeys.new_secret())
    Repository.init(open_backend(url), [agekeys.recipient_of(identity)], tmp_path / "state")
    src = make_tree(tmp_path / "src", big=60_000_000)
    backend = open_backend(url)
    assert isinstance(backend, Retrying)
    writer = Repository.open_writer(backend, tmp_path / "state")
    started = threading.Event()

    def restart() -> None:
        started.wait(60)
        agent_server.stop()
        time.sleep(1.0)
        agent_server.start()

    root = agent_server.root / namespace / "data"
    restarter = threading.Thread(target=restart)
    restarter.start()
    original_put = backend.inner.put

    def put(name, data, *, exclusive=False):
        if name.startswith("data/"):
            started.set()  # the first pack is on its way: now the agent goes away
        original_put(name, data, exclusive=exclusive)

    backend.inner.put = put
    try:
        result = run_backup(writer, [src], state_dir=tmp_path / "state")
    finally:
        restarter.join()
    assert backend.retries >= 1, "the agent's absence was met by retries"
    assert result.snapshot.files == 7
    assert root.exists()
    assert run_check(Repository.open_writer(open_backend(url), tmp_path / "state")).ok
