"""The agent against a hostile peer: raw sockets and httpx on loopback, a real ``agent serve``.

Each test names the refusal it expects: status, message, and that nothing is left on disk.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sealbox.agent.tokens import TokenStore
from tests.servers import _wait_port, free_port, stop_group

HEADER_TIMEOUT = 1.0
PER_CLIENT, OVERALL = 4, 7
QUOTA = 100_000


class Agent:
    """``sealbox agent serve`` on 127.0.0.1, plain HTTP (or TLS with ``tls=(cert, key)``)."""

    def __init__(self, root: Path, *args: str, tls: tuple[Path, Path] | None = None) -> None:
        self.root, self.port = root, free_port()
        tls_args = ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])] if tls else []
        argv = [sys.executable, "-m", "sealbox", "agent", "serve", "--root", str(root)]
        self.proc = subprocess.Popen(
            [*argv, "--listen", f"127.0.0.1:{self.port}", *tls_args, *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        assert _wait_port(self.port, self.proc, 30), "the agent did not start"
        self.url = f"http://127.0.0.1:{self.port}"

    def token(self, namespace: str, admin: bool = False) -> str:
        return TokenStore(self.root).create(namespace, admin=admin)[1]

    def client(self, namespace: str, admin: bool = False) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token(namespace, admin)}"}
        return httpx.Client(base_url=f"{self.url}/v1/ns/{namespace}", headers=headers, timeout=10)

    def stop(self) -> None:
        stop_group(self.proc, timeout=10)


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    """Small limits, so that each rule shows in a second or two."""
    server = Agent(
        tmp_path_factory.mktemp("peer") / "root",
        *("--header-timeout", str(HEADER_TIMEOUT), "--max-connections", str(OVERALL)),
        *("--max-connections-per-client", str(PER_CLIENT), "--quota", str(QUOTA)),
        *("--min-upload-rate", "2000", "--upload-grace", "1", "--idle-timeout", "30"),
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def append_only(tmp_path_factory):
    server = Agent(tmp_path_factory.mktemp("ao") / "root", "--append-only")
    yield server
    server.stop()


def _connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))  # every 127/8 address is loopback on Linux: a second "client"
    sock.connect(("127.0.0.1", port))
    return sock


def _closed_after(sock: socket.socket, limit: float) -> float:
    """Seconds until the server closes ``sock`` (reading and discarding), or fail at ``limit``."""
    started = time.monotonic()
    sock.settimeout(limit)
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for {limit} s")
    return time.monotonic() - started


def _answer(sock: socket.socket, timeout: float = 10, data: bytes = b"") -> tuple[int, bytes]:
    """The status and body of the one response on ``sock`` (``data``: what was read of it)."""
    sock.settimeout(timeout)
    try:
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < _length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def _length(data: bytes) -> int:
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 1 << 30


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# -- connections -------------------------------------------------------------------------------


def test_a_silent_peer_is_disconnected_at_the_header_deadline(agent):
    sock = _connect(agent.port)
    spent = _closed_after(sock, 5)
    assert HEADER_TIMEOUT * 0.8 < spent < HEADER_TIMEOUT + 1.5
    sock.close()


def _dribble(sock: socket.socket) -> float:
    """Send a request's headers one byte every 50 ms until the server cuts us off; seconds."""
    started = time.monotonic()
    request = b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 100
    try:
        for byte in request:  # each byte would reset an idle timer
            sock.sendall(bytes([byte]))
            time.sleep(0.05)
        pytest.fail("the server took headers for longer than the deadline")
    except (BrokenPipeError, ConnectionResetError):
        pass
    return time.monotonic() - started


def test_a_peer_dribbling_its_headers_is_disconnected_at_the_deadline(agent):
    sock = _connect(agent.port)
    assert _dribble(sock) < HEADER_TIMEOUT + 1.5
    sock.close()
    # The same on a kept-alive connection: the clock starts at the next request's first byte.
    sock = _connect(agent.port)
    sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _answer(sock)[0] == 200
    time.sleep(HEADER_TIMEOUT * 1.2)  # idle between requests: the keep-alive timeout's business
    assert _dribble(sock) < HEADER_TIMEOUT + 1.5
    sock.close()


def test_a_silent_peer_is_disconnected_before_the_tls_handshake(tmp_path):
    from tests.servers import self_signed

    cert, key = self_signed(tmp_path)
    server = Agent(tmp_path / "root", "--header-timeout", "1", tls=(cert, key))
    try:
        sock = _connect(server.port)  # TCP only: never a ClientHello
        assert _closed_after(sock, 5) < 2.5
        sock.close()
        tls = ssl.create_default_context(cafile=str(cert)).wrap_socket(
            _connect(server.port), server_hostname="127.0.0.1"
        )  # a handshake, then silence
        assert _closed_after(tls, 5) < 2.5
        tls.close()
    finally:
        server.stop()


def test_connections_are_limited_per_client_address_and_overall(agent):
    held = [_connect(agent.port) for _ in range(PER_CLIENT)]
    time.sleep(0.2)
    refused = _connect(agent.port)
    status, body = _answer(refused)
    assert status == 503 and b"127.0.0.1 has 4 connections open" in body
    other = _connect(agent.port, "127.0.0.2")  # another address is not affected
    other.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert _answer(other)[0] == 200
    held += [_connect(agent.port, "127.0.0.3") for _ in range(OVERALL - PER_CLIENT)]
    time.sleep(0.2)
    status, body = _answer(_connect(agent.port, "127.0.0.4"))
    assert status == 503 and b"7 connections are open" in body
    for sock in held:
        sock.close()
    time.sleep(0.3)  # closed connections give their places back
    again = _connect(agent.port)
    again.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert _answer(again)[0] == 200


def test_a_slow_uploader_is_cut_off_by_the_rate_rule(agent):
    token = agent.token("slow")
    sock = _connect(agent.port)
    sock.sendall(
        b"PUT /v1/ns/slow/objects/data/ab/pack HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + token.encode()
        + b"\r\nContent-Length: 5000\r\n\r\n"
    )
    started = time.monotonic()
    sock.settimeout(0.25)
    answer = b""
    while not answer and time.monotonic() - started < 8:
        try:  # one byte every 0.25 s: never idle, but 8000 times slower than the rule
            sock.sendall(b"x")
            answer = sock.recv(65536)
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            break
    assert time.monotonic() - started < 3  # grace 1 s + 1 byte / 2000 B/s
    status, body = _answer(sock, data=answer)
    assert status == 408
    assert json.loads(body) == {
        "error": "upload slower than 2000 bytes/s (after 1 s of grace): abandoned"
    }
    sock.close()
    time.sleep(0.2)
    assert _files(agent.root / "slow") == []  # no object, no temporary file
    with agent.client("slow") as client:
        assert client.get("/capacity").json()["used"] == 0


# -- quota -------------------------------------------------------------------------------------


def test_quota_refuses_a_declared_length_that_does_not_fit(agent):
    with agent.client("q1") as client:
        assert client.put("/objects/a", content=b"a" * 60_000).status_code == 201
        refused = client.put("/objects/b", content=b"b" * 50_000)
        assert refused.status_code == 507
        assert refused.json()["error"] == (
            f"quota exceeded: namespace q1 uses 60000 of {QUOTA} bytes; 50000 more do not fit"
        )
        assert _files(agent.root / "q1") == ["a"]
        capacity = client.get("/capacity").json()
        assert capacity == {**capacity, "used": 60_000, "free": 40_000, "quota": QUOTA}
        assert client.put("/objects/b", content=b"b" * 40_000).status_code == 201  # fits exactly
        assert client.put("/objects/c", content=b"c").status_code == 507
        # A replacement counts the difference; a deletion gives the bytes back.
        assert client.put("/objects/a", content=b"A" * 10_000).status_code == 201
        assert client.get("/capacity").json()["used"] == 50_000
        assert client.delete("/objects/b").status_code == 204
        assert client.get("/capacity").json()["used"] == 10_000


def test_quota_stops_an_upload_without_length_as_soon_as_it_overflows(agent):
    token = agent.token("q2")
    sock = _connect(agent.port)
    sock.sendall(
        b"PUT /v1/ns/q2/objects/big HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + token.encode()
        + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"%x\r\n" % 30_000 + b"z" * 30_000 + b"\r\n"
    sent, answer = 0, b""
    sock.settimeout(0.3)
    while not answer and sent < 20:
        try:
            sock.sendall(chunk)
            sent += 1
            answer = sock.recv(65536)
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            break
    assert sent <= 5  # refused at the chunk that overflowed, not after the whole body
    status, body = _answer(sock, data=answer)
    assert status == 507
    assert json.loads(body)["error"].startswith("quota exceeded: namespace q2 uses 0 of 100000")
    sock.close()
    time.sleep(0.2)
    assert _files(agent.root / "q2") == []
    with agent.client("q2") as client:
        assert client.get("/capacity").json()["used"] == 0
        fits = client.put("/objects/small", content=iter([b"s" * 40_000, b"s" * 40_000]))
        assert fits.status_code == 201  # chunked too (an iterator has no length)
        assert client.get("/capacity").json()["used"] == 80_000


def test_quota_counts_uploads_under_way(agent):
    """Two uploads that each fit but not together: the second is refused before it streams."""
    token = agent.token("q3")
    first = _connect(agent.port)
    first.sendall(
        b"PUT /v1/ns/q3/objects/one HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + token.encode()
        + b"\r\nContent-Length: 60000\r\n\r\n"
        + b"1" * 1000
    )
    time.sleep(0.3)
    with agent.client("q3") as client:
        second = client.put("/objects/two", content=b"2" * 60_000)
        assert second.status_code == 507
        assert "(+60000 in uploads under way)" in second.json()["error"]
        assert client.get("/capacity").json()["free"] == QUOTA - 60_000
        first.sendall(b"1" * 59_000)
        assert _answer(first)[0] == 201
        assert client.get("/capacity").json() | {"total": 0} == {
            "used": 60_000,
            "free": 40_000,
            "quota": QUOTA,
            "total": 0,
        }
    assert _files(agent.root / "q3") == ["one"]


# -- names that are not objects ----------------------------------------------------------------


def test_get_or_head_on_a_directory_or_a_symlink_is_404(agent):
    with agent.client("dirs") as client:
        assert client.put("/objects/repo/data/ab/pack", content=b"p").status_code == 201
        for name in ("repo", "repo/data", "repo/data/ab"):
            assert client.get(f"/objects/{name}").status_code == 404
            assert client.head(f"/objects/{name}").status_code == 404
        (agent.root / "dirs" / "link").symlink_to("/etc/hostname")  # planted on the host
        answer = client.get("/objects/link")
        assert answer.status_code == 404 and answer.json() == {"error": "no such object"}
        assert "link" not in [o["name"] for o in client.get("/objects").json()]


def test_put_under_an_object_or_onto_a_directory_is_409(agent):
    with agent.client("clash") as client:
        assert client.put("/objects/a", content=b"object").status_code == 201
        under = client.put("/objects/a/b", content=b"x")
        assert under.status_code == 409
        assert under.json() == {"error": "a parent of this name is an object"}
        deeper = client.put("/objects/a/b/c", content=b"x")
        assert deeper.status_code == 409
        assert client.put("/objects/d/e", content=b"x").status_code == 201
        onto = client.put("/objects/d", content=b"x")
        assert onto.status_code == 409
        assert onto.json() == {"error": "that name is a directory, not an object"}
        assert client.delete("/objects/d").status_code == 409
        assert client.get("/capacity").json()["used"] == len(b"object") + 1
    assert _files(agent.root / "clash") == ["a", "d/e"]


# -- append-only -------------------------------------------------------------------------------


def test_append_only_lets_nested_locks_and_probes_go_and_nothing_else(append_only):
    with append_only.client("nest") as client:
        lock = "0123456789abcdef" * 2  # a lock's name: 32 hex digits
        for name in (f"repo/locks/{lock}", "x/y/probes/canary-pam-01-a1b2", f"locks/{lock}"):
            assert client.put(f"/objects/{name}", content=b"1").status_code == 201
            assert client.put(f"/objects/{name}", content=b"2").status_code == 201  # replaced
            assert client.get(f"/objects/{name}").content == b"2"
            assert client.delete(f"/objects/{name}").status_code == 204
        for name in (
            "repo/data/ab/abcd",
            "locks/x/data",
            "repo/locksmith/a",
            "probes",
            "repo/locks/config",  # a destination whose path ends in locks: still protected
            "site/probes/secrets-pam-01-20261201T000000Z.age",
        ):
            assert client.put(f"/objects/{name}", content=b"1").status_code == 201
            refused = client.delete(f"/objects/{name}")
            assert refused.status_code == 403
            assert refused.json() == {"error": "append-only: stored objects cannot be deleted"}
            assert client.put(f"/objects/{name}", content=b"2").status_code == 409
            assert client.get(f"/objects/{name}").content == b"1"


def test_append_only_takes_an_identical_reput_and_refuses_other_bytes(append_only):
    with append_only.client("same") as client:
        assert client.put("/objects/data/ab/pack", content=b"content").status_code == 201
        assert client.put("/objects/data/ab/pack", content=b"content").status_code == 200
        assert (
            client.put("/objects/data/ab/pack", content=iter([b"con", b"tent"])).status_code == 200
        )
        different = client.put("/objects/data/ab/pack", content=b"CONTENT")
        assert different.status_code == 409
        assert different.json() == {"error": "object exists (append-only)"}
        exclusive = client.put(
            "/objects/data/ab/pack", content=b"content", headers={"If-None-Match": "*"}
        )
        assert exclusive.status_code == 409 and exclusive.json() == {"error": "object exists"}
        assert client.get("/objects/data/ab/pack").content == b"content"
    assert _files(append_only.root / "same") == ["data/ab/pack"]


def test_two_system_backups_through_an_append_only_agent(
    append_only, sealbox, tmp_path, monkeypatch
):
    """The real CLI flow: a repository below a path of the namespace, its locks nested."""
    from sealbox.crypto import agekeys
    from tests.conftest import make_tree

    monkeypatch.setenv("SEALBOX_AGENT_TOKEN", append_only.token("pam-01"))
    monkeypatch.setenv("SEALBOX_STATE_DIR", str(tmp_path / "state"))
    recipient = agekeys.recipient_of(agekeys.identity_from_secret(agekeys.new_secret()))
    url = f"agent+http://127.0.0.1:{append_only.port}/pam-01/repo"
    assert sealbox("repo", "init", url, "--recipient", recipient).code == 0
    src = make_tree(tmp_path / "src")
    first = sealbox("repo", "backup", url, src, "--json")
    assert first.code == 0, first.err
    (src / "new.txt").write_text("a second run adds a file\n")
    second = sealbox("repo", "backup", url, src, "--json")
    assert second.code == 0, second.err
    assert json.loads(second.out)["files_new"] == 1
    assert len(json.loads(sealbox("repo", "snapshots", url, "--json").out)) == 2
    stored = _files(append_only.root / "pam-01")
    assert not [n for n in stored if n.startswith("repo/locks/")]  # both runs unlocked
    pack = next(n for n in stored if n.startswith("repo/data/"))
    with append_only.client("pam-01") as client:
        refused = client.delete(f"/objects/{pack}")
        assert refused.status_code == 403 and "append-only" in refused.json()["error"]
