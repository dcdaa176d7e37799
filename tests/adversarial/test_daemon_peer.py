"""The daemon's HTTP server against a hostile peer: a real ``sealbox daemon`` on loopback."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from argon2 import PasswordHasher

from sealbox.dashboard.auth import LOCKOUT, MAX_CLIENTS, MAX_FAILURES, Throttle
from tests.adversarial.test_agent_peer import _answer, _closed_after, _connect
from tests.daemons import DaemonProcess, daemon_config, kinds_config
from tests.servers import free_port

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("daemon")
    body = kinds_config(tmp_path, schedule="0 0 1 1 *") + (
        f'[[daemon.users]]\nname = "alice"\npassword_hash = "{PasswordHasher().hash(PASSWORD)}"\n'
        'role = "operator"\n'
    )
    port = free_port()
    limits = "header_timeout_seconds = 1\nmax_connections = 40\nmax_connections_per_client = 4"
    process = DaemonProcess(daemon_config(tmp_path, port, body, daemon_extra=limits), port)
    yield process
    process.stop()


def test_a_silent_peer_is_disconnected_at_the_header_deadline(daemon):
    sock = _connect(daemon.port)
    assert 0.8 < _closed_after(sock, 5) < 2.5
    sock.close()


def test_connections_are_limited_per_client_address(daemon):
    held = [_connect(daemon.port) for _ in range(4)]
    time.sleep(0.2)
    status, body = _answer(_connect(daemon.port))
    assert status == 503 and b"127.0.0.1 has 4 connections open already" in body
    other = _connect(daemon.port, "127.0.0.2")
    other.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert _answer(other)[0] == 200
    for sock in held:
        sock.close()


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/login", 200),
        ("GET", "/", 303),  # the redirect to the login page
        ("GET", "/no-such-page", 404),
        ("POST", "/login", 303),  # a failed login's redirect
        ("POST", "/run/secrets", 401),
        ("GET", "/static/style.css", 200),
        ("GET", "/api/status", 200),
    ],
)
def test_every_response_forbids_framing_and_foreign_content(daemon, method, path, status):
    answer = httpx.request(
        method,
        f"{daemon.base}{path}",
        data={"user": "alice", "password": "wrong"} if method == "POST" else None,
        headers={"X-Forwarded-For": f"198.51.100.{len(path)}"},
        timeout=30,
    )
    assert answer.status_code == status
    csp = answer.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_a_login_flood_does_not_stall_the_api(daemon):
    """Wrong passwords from many addresses at once: argon2 runs off the event loop, so the API
    answers meanwhile in milliseconds, not after the queue of password checks."""

    def attempt(address: str) -> None:
        transport = httpx.HTTPTransport(local_address=address)
        with httpx.Client(transport=transport, timeout=60) as client:
            for _ in range(2):
                client.post(f"{daemon.base}/login", data={"user": "alice", "password": "x"})

    flood = [threading.Thread(target=attempt, args=(f"127.0.1.{i}",)) for i in range(1, 13)]
    started = time.monotonic()
    for thread in flood:
        thread.start()
    slowest = 0.0
    while any(t.is_alive() for t in flood):
        asked = time.monotonic()
        assert daemon.get("/healthz").status_code == 200
        slowest = max(slowest, time.monotonic() - asked)
        time.sleep(0.02)
    took = time.monotonic() - started
    assert took > 0.5  # the flood did keep the password checks busy for a while
    # Relative to the flood, not in absolute seconds: on a loaded machine every answer is slow,
    # but with the password checks on the event loop an answer waits for the queue of them.
    assert slowest < took / 4, f"the API stalled {slowest:.2f} s during a {took:.2f} s login flood"


def test_the_failed_login_table_is_bounded_and_keeps_lockouts():
    assert MAX_CLIENTS == 10_000
    throttle = Throttle(capacity=3)
    for _ in range(MAX_FAILURES):
        throttle.failed("10.0.0.1", 0.0)  # locked out
    throttle.failed("10.0.0.2", 1.0)
    throttle.failed("10.0.0.3", 2.0)
    throttle.failed("10.0.0.4", 3.0)  # full: the oldest unlocked entry (.2) goes
    assert list(throttle.table) == ["10.0.0.1", "10.0.0.3", "10.0.0.4"]
    for address in ("10.0.0.5", "10.0.0.6", "10.0.0.7"):
        throttle.failed(address, 4.0)
    assert "10.0.0.1" in throttle.table and len(throttle.table) == 3
    assert throttle.locked_out("10.0.0.1", 600.0)  # fifteen minutes, not five
    assert not throttle.locked_out("10.0.0.1", LOCKOUT + 1)
    for address in ("10.0.0.5", "10.0.0.6", "10.0.0.7"):  # fill the table with lockouts
        for _ in range(MAX_FAILURES):
            throttle.failed(address, 5.0)
    throttle.failed("10.0.0.8", 6.0)
    assert "10.0.0.8" not in throttle.table and len(throttle.table) == 3
    assert throttle.locked_out("10.0.0.8", 6.0)  # a full table of lockouts fails closed
    assert not throttle.locked_out("10.0.0.8", 5.0 + LOCKOUT + 1)


def test_a_cross_site_post_is_refused_even_with_a_valid_session(daemon):
    """Another site's page (Origin: evil) can neither log in nor start a run, even riding a
    valid session cookie; the same form from the dashboard itself is accepted."""
    import re

    evil = {"Origin": "https://evil.example"}
    with httpx.Client(base_url=daemon.base, timeout=10) as client:
        cross = client.post("/login", data={"user": "alice", "password": PASSWORD}, headers=evil)
        assert cross.status_code == 403 and "cross-site" in cross.text
        ok = client.post("/login", data={"user": "alice", "password": PASSWORD})
        assert ok.status_code == 303, ok.text
        sid = ok.cookies.get("sealbox_session") or re.search(
            r"sealbox_session=([^;]+)", ok.headers.get("set-cookie", "")
        ).group(1)
        cookie = {"Cookie": f"sealbox_session={sid}"}
        page = client.get("/", headers=cookie)
        assert page.status_code == 200
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        forged = client.post("/run/secrets", data={"csrf": csrf}, headers={**cookie, **evil})
        assert forged.status_code == 403 and "CSRF" in forged.text
        stale = client.post("/run/secrets", data={"csrf": "0" * len(csrf)}, headers=cookie)
        assert stale.status_code == 403
        same = client.post("/run/secrets", data={"csrf": csrf}, headers=cookie)
        assert same.status_code == 303, same.text
