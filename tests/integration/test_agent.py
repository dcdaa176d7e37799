"""The agent as a real HTTPS process on 127.0.0.1: who may do what, append-only, bad requests."""

from __future__ import annotations

import socket
import ssl
import time

import httpx
import pytest

from sealbox.backends import open_backend
from sealbox.crypto import agekeys
from sealbox.errors import ConfigError, DestinationError
from sealbox.keys.store import Keystore
from sealbox.repo.backup import run_backup
from sealbox.repo.blobs import BlobReader
from sealbox.repo.check import run_check
from sealbox.repo.repository import Repository
from sealbox.repo.restore import plan_restore, run_restore
from tests.conftest import make_tree, small_tmpfs


def _client(server, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(
        base_url=f"https://127.0.0.1:{server.port}",
        verify=ssl.create_default_context(cafile=str(server.cert)),
        headers=headers,
    )


def test_tokens_reach_only_their_namespace(agent_server):
    good = agent_server.token("alpha")
    with _client(agent_server) as anonymous:
        assert anonymous.get("/v1/health").json()["ok"]
        assert anonymous.get("/v1/ns/alpha/objects").status_code == 401
    with _client(agent_server, "sbx_0000_wrong") as wrong:
        assert wrong.get("/v1/ns/alpha/objects").status_code == 401
    with _client(agent_server, good) as client:
        assert client.put("/v1/ns/alpha/objects/x", content=b"1").status_code == 201
        assert client.get("/v1/ns/beta/objects").status_code == 403
        assert client.put("/v1/ns/beta/objects/x", content=b"1").status_code == 403
    from sealbox.agent.tokens import TokenStore

    token_id = good.split("_")[1]
    TokenStore(agent_server.root).revoke(token_id)
    with _client(agent_server, good) as revoked:
        assert revoked.get("/v1/ns/alpha/objects").status_code == 401


@pytest.mark.parametrize(
    "path", ["..%2F..%2Fetc%2Fpasswd", "a/../../x", "%2e%2e/x", ".hidden", "a//b", "a%00b"]
)
def test_path_tricks_are_refused(agent_server, path):
    token = agent_server.token("tricks")
    with _client(agent_server, token) as client:
        response = client.put(f"/v1/ns/tricks/objects/{path}", content=b"evil")
        assert response.status_code in (400, 404), (path, response.status_code)
    assert not any(p.name == "passwd" for p in agent_server.root.rglob("*"))


def test_append_only_never_replaces_or_deletes(append_only_agent):
    token = append_only_agent.token("appliance")
    admin = append_only_agent.token("appliance", admin=True)
    with _client(append_only_agent, token) as client:
        assert client.put("/v1/ns/appliance/objects/data/aa/pack", content=b"v1").status_code == 201
        assert client.put("/v1/ns/appliance/objects/data/aa/pack", content=b"v2").status_code == 409
        assert client.delete("/v1/ns/appliance/objects/data/aa/pack").status_code == 403
        assert client.get("/v1/ns/appliance/objects/data/aa/pack").content == b"v1"
        assert (
            client.put(
                "/v1/ns/appliance/objects/locks/abababababababababababababababab", content=b"l"
            ).status_code
            == 201
        )
        assert (
            client.delete(
                "/v1/ns/appliance/objects/locks/abababababababababababababababab"
            ).status_code
            == 204
        )  # locks stay usable
    with _client(append_only_agent, admin) as pruner:
        assert pruner.delete("/v1/ns/appliance/objects/data/aa/pack").status_code == 204


def test_append_only_lets_a_lease_be_renewed_but_never_a_takeover_replaced(
    append_only_agent, monkeypatch
):
    """The cluster lease on an append-only agent: the holder's renewal (cluster/beat-N) is
    replaced in place; the takeovers (cluster/lease-N), whose counters fence, stay immutable."""
    from sealbox.backends import open_backend
    from sealbox.destinations import lease
    from sealbox.errors import DestinationError

    monkeypatch.setenv("SEALBOX_AGENT_TOKEN", append_only_agent.token("cluster-ns"))
    monkeypatch.setenv("SEALBOX_AGENT_CA", str(append_only_agent.cert))
    backend = open_backend(f"{append_only_agent.base}/cluster-ns")
    lease.take(backend, 1, "a")
    beat = lease.Beat(1, "a")
    for _ in range(3):
        lease.write_beat(backend, beat)
    found = lease.read_beat(backend, 1)
    assert found is not None and found.seq == 3
    with pytest.raises(DestinationError):
        backend.put("cluster/lease-000000000001", lease.Lease(1, "b", "").encode())
    with pytest.raises(DestinationError):
        backend.delete("cluster/lease-000000000001")
    held = lease.current(backend)
    assert held is not None and held.node == "a"


def test_oversized_body_and_stalled_client(agent_server):
    token = agent_server.token("limits")
    with _client(agent_server, token) as client:
        big = client.put("/v1/ns/limits/objects/big", content=b"\0" * ((64 << 20) + 1))
        assert big.status_code == 413
    # A client that announces a body and stalls: cut off after the idle timeout (2 s here).
    stalled = ssl.create_default_context(cafile=str(agent_server.cert)).wrap_socket(
        socket.create_connection(("127.0.0.1", agent_server.port)), server_hostname="127.0.0.1"
    )
    stalled.sendall(
        b"PUT /v1/ns/limits/objects/slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + token.encode()
        + b"\r\nContent-Length: 1000000\r\n\r\n"
        + b"\1" * 1000
    )
    stalled.settimeout(10)
    assert b" 408 " in stalled.recv(4096).split(b"\r\n")[0] + b" "
    stalled.close()
    # A client that announces a body and stalls half-way, then disappears.
    raw = ssl.create_default_context(cafile=str(agent_server.cert)).wrap_socket(
        socket.create_connection(("127.0.0.1", agent_server.port)), server_hostname="127.0.0.1"
    )
    raw.sendall(
        b"PUT /v1/ns/limits/objects/stalled HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + token.encode()
        + b"\r\nContent-Length: 1000000\r\n\r\n"
        + b"\1" * 1000
    )
    time.sleep(0.5)
    raw.close()
    deadline = time.monotonic() + 10  # the agent notices the disconnect and cleans up
    while [
        p for p in (agent_server.root / "limits").rglob(".tmp-*")
    ] and time.monotonic() < deadline:
        time.sleep(0.05)
    with _client(agent_server, token) as client:
        assert client.get("/v1/ns/limits/objects").json() == []  # nothing half-stored
        assert (
            client.put("/v1/ns/limits/objects/after", content=b"ok").status_code == 201
        )  # still serving
    assert not [p for p in (agent_server.root / "limits").rglob(".tmp-*")]


def test_disk_full_is_refused_cleanly(tmp_path, tmp_path_factory):
    from tests.servers import AgentServer, free_port, self_signed

    with small_tmpfs(tmp_path / "full", "2m") as root:
        cert, key = self_signed(tmp_path)
        server = AgentServer(root, free_port(), cert, key)
        server.start()
        try:
            token = server.token("ns")
            with _client(server, token) as client:
                response = client.put("/v1/ns/ns/objects/huge", content=b"\1" * (4 << 20))
                assert response.status_code == 507
                assert client.put("/v1/ns/ns/objects/small", content=b"fits").status_code == 201
                assert [o["name"] for o in client.get("/v1/ns/ns/objects").json()] == ["small"]
        finally:
            server.stop()


def test_plain_http_only_to_loopback(monkeypatch):
    monkeypatch.setenv("SEALBOX_AGENT_TOKEN", "sbx_0_x")
    with pytest.raises(ConfigError, match="loopback"):
        open_backend("agent+http://192.0.2.10:8443/ns")
    open_backend("agent+http://127.0.0.1:8443/ns")


def test_repository_roundtrip_through_the_agent(agent_env, tmp_path):
    identity = agekeys.identity_from_secret(agekeys.new_secret())
    identities = agekeys.load_identities(identity, "t")
    Repository.init(open_backend(agent_env), [agekeys.recipient_of(identity)], tmp_path / "state")
    src = make_tree(tmp_path / "src", big=10_000_000)
    snap = run_backup(
        Repository.open_writer(open_backend(agent_env), tmp_path / "state"),
        [src],
        state_dir=tmp_path / "state",
    ).snapshot
    repo = Repository.open(
        open_backend(agent_env), identities, Keystore(tmp_path / "state").trust()
    )
    reader = BlobReader(repo, repo.load_index(), identities)
    assert run_check(repo, reader=reader, read_data=True).ok
    plan = plan_restore(repo, reader.index, reader, repo.find_snapshot(snap.id), tmp_path / "out")
    assert not run_restore(repo, reader.index, reader, plan, tmp_path / "out").failed


def test_prune_is_refused_by_an_append_only_agent(append_only_agent, monkeypatch, tmp_path):
    monkeypatch.setenv("SEALBOX_AGENT_TOKEN", append_only_agent.token("ao"))
    monkeypatch.setenv("SEALBOX_AGENT_CA", str(append_only_agent.cert))
    url = f"{append_only_agent.base}/ao"
    identity = agekeys.identity_from_secret(agekeys.new_secret())
    Repository.init(open_backend(url), [agekeys.recipient_of(identity)], tmp_path / "state")
    src = make_tree(tmp_path / "src", big=100_000)
    snap = run_backup(
        Repository.open_writer(open_backend(url), tmp_path / "state"),
        [src],
        state_dir=tmp_path / "state",
    ).snapshot
    from sealbox.repo.forget import forget_snapshots

    repo = Repository.open_writer(open_backend(url), tmp_path / "state")
    with pytest.raises(DestinationError, match="append-only"):
        forget_snapshots(repo, [snap])
    assert [s.id for s in repo.snapshots()] == [snap.id]


def test_mutual_tls_needs_the_client_certificate(tmp_path, monkeypatch, sealbox):
    from tests.servers import AgentServer, client_certificate, free_port, self_signed

    cert, key = self_signed(tmp_path)
    client_dir = tmp_path / "client"
    client_dir.mkdir()
    client_cert, client_key = client_certificate(client_dir, cert, key)
    server = AgentServer(
        tmp_path / "root", free_port(), cert, key, extra=("--client-ca", str(cert))
    )
    server.start()
    try:
        monkeypatch.setenv("SEALBOX_AGENT_TOKEN", server.token("pam-01"))
        monkeypatch.setenv("SEALBOX_AGENT_CA", str(cert))
        url = f"{server.base}/pam-01"
        with pytest.raises(DestinationError):  # no client certificate: the handshake fails
            open_backend(url).put("probe", b"x")
        monkeypatch.setenv("SEALBOX_AGENT_CLIENT_CERT", str(client_cert))
        monkeypatch.setenv("SEALBOX_AGENT_CLIENT_KEY", str(client_key))
        backend = open_backend(url)
        backend.put("probe", b"x")
        assert backend.get("probe") == b"x"
        monkeypatch.setenv("SEALBOX_AGENT_CLIENT_KEY", str(tmp_path / "missing.key"))
        with pytest.raises(ConfigError, match="client certificate"):
            open_backend(url)
    finally:
        server.stop()
    refused = sealbox(
        "agent", "serve", "--root", tmp_path / "r2", "--listen", "127.0.0.1:1", "--client-ca", cert
    )
    assert refused.code == 3 and "--client-ca needs TLS" in refused.err


def test_the_backend_asks_the_agent_whether_it_is_append_only(
    agent_server, append_only_agent, monkeypatch
):
    from tests.servers import free_port

    monkeypatch.setenv("SEALBOX_AGENT_TOKEN", append_only_agent.token("ask"))
    monkeypatch.setenv("SEALBOX_AGENT_CA", str(append_only_agent.cert))
    backend = open_backend(f"{append_only_agent.base}/ask/repo")
    assert backend.append_only is True
    backend.put("data/ab/pack", b"x")
    with pytest.raises(DestinationError) as refused:
        backend.delete("data/ab/pack")
    assert str(refused.value) == (
        f"{backend.display}: cannot delete data/ab/pack: the destination is append-only"
        " (prune with an admin token, on the storage host)"
    )
    backend.put("locks/" + "ab" * 16, b"l")
    backend.delete("locks/" + "ab" * 16)  # the repository's locks below its path stay deletable
    monkeypatch.setenv("SEALBOX_AGENT_TOKEN", agent_server.token("ask"))
    monkeypatch.setenv("SEALBOX_AGENT_CA", str(agent_server.cert))
    assert open_backend(f"{agent_server.base}/ask").append_only is False
    dead = open_backend(f"agent+https://127.0.0.1:{free_port()}/ask")
    with pytest.raises(DestinationError, match="cannot ask whether it is append-only"):
        _ = dead.append_only  # an agent that cannot say is not taken for a writable one


def test_plain_http_is_refused_off_loopback_and_a_loopback_name_is_accepted(sealbox, tmp_path):
    """Without a certificate the agent serves plain HTTP on a loopback address only; a name that
    resolves to loopback (localhost) is one (it used to be an internal error, exit 70)."""
    import subprocess
    import sys

    from tests.servers import _wait_port, free_port

    for listen in ("203.0.113.5:8443", "0.0.0.0:8443", "no-such-host.invalid:8443"):
        refused = sealbox("agent", "serve", "--root", tmp_path / "root", "--listen", listen)
        assert refused.code == 3, (listen, refused.err)
        assert "plain HTTP, on a loopback address only" in refused.err
        assert "Traceback" not in refused.err
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sealbox", "agent", "serve", "--root", str(tmp_path / "root"),
         "--listen", f"localhost:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert _wait_port(port, proc, 30), proc.stderr.read().decode() if proc.stderr else ""
        assert httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=5).json()["ok"] is True
    finally:
        proc.terminate()
        proc.wait(timeout=10)
