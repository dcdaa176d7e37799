"""The fence at every publishing point: a run holding a stale lease counter stops with exit code
13 and publishes nothing (no secrets backup, no snapshot header, no recordings batch); the same
run under the current counter publishes. A real local destination and the CLI in-process."""

from __future__ import annotations

import json

import pytest

from sealbox.backends import open_backend
from sealbox.destinations import lease
from sealbox.usecases.cluster import TOKEN_ENV
from tests.daemons import RECIPIENT


@pytest.fixture
def node(tmp_path):
    vault = tmp_path / "vault.json"
    vault.write_text(json.dumps([{"id": "a", "type": "secret", "name": "t", "secret": {"k": "v"}}]))
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "app.conf").write_text("listen = 443\n")
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    (recordings / "s1.cast").write_bytes(b"session\n" * 100)
    config = tmp_path / "sealbox.toml"
    config.write_text(
        f"""
[appliance]
name = "pam-01"
state_dir = "{tmp_path / "state"}"
var_dir = "{tmp_path / "var"}"
[keys]
recipients = ["{RECIPIENT}"]
[destinations.offsite]
url = "file://{tmp_path / "remote"}"
allow_on_appliance = true
[cluster]
node = "pam-01a"
[secrets]
destination = "offsite"
[[secrets.sources]]
type = "json"
path = "{vault}"
[system]
destination = "offsite"
paths = ["{etc}"]
[recordings]
destination = "offsite"
path = "{recordings}"
settle_seconds = 0
"""
    )
    (tmp_path / "var").mkdir()
    backend = open_backend(f"file://{tmp_path / 'remote'}")
    lease.take(backend, 1, "pam-01a")
    return config, backend


def _published(backend) -> list[str]:
    return sorted(
        o.name
        for o in backend.list("")
        if o.name.endswith((".age", ".sig"))
        or o.name.startswith(("repo/snapshots/", "repo/recordings/"))
    )


@pytest.mark.parametrize("kind", ["secrets", "system", "recordings"])
def test_a_run_under_a_stale_lease_publishes_nothing(node, sealbox, monkeypatch, kind):
    config, backend = node
    monkeypatch.setenv(TOKEN_ENV, "1")
    if kind != "secrets":  # the repository exists already (made under lease 1)
        assert sealbox("--config", config, "backup", kind, "--json").code == 0
    before = _published(backend)
    lease.take(backend, 2, "pam-01b")  # another node took over while this one ran
    if kind == "recordings":
        (config.parent / "recordings" / "s2.cast").write_bytes(b"two\n" * 100)
    fenced = sealbox("--config", config, "backup", kind, "--json")
    assert fenced.code == 13, fenced.err
    assert "lost the cluster lease" in fenced.err and "pam-01b holds lease 2" in fenced.err
    assert _published(backend) == before
    # Under the current lease (this node's again), the same run publishes.
    lease.take(backend, 3, "pam-01a")
    monkeypatch.setenv(TOKEN_ENV, "3")
    assert sealbox("--config", config, "backup", kind, "--json").code == 0
    assert len(_published(backend)) > len(before)
