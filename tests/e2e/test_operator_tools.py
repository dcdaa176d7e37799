"""The operator's small tools, as an operator runs them: `config hash-password`, `config
sample`, `agent token create | list | revoke` (against a running agent)."""

from __future__ import annotations

import json
import ssl
import tomllib

import httpx
from argon2 import PasswordHasher


def test_hash_password_prints_an_argon2id_hash_of_the_password_and_nothing_else(sealbox, tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("correct horse battery staple\n")
    result = sealbox("config", "hash-password", "--password-file", secret)
    assert result.code == 0, result.err
    (line,) = result.out.splitlines()
    assert line.startswith("$argon2id$")
    assert PasswordHasher().verify(line, "correct horse battery staple")
    assert "horse" not in result.out + result.err
    secret.write_text("short\n")
    refused = sealbox("config", "hash-password", "--password-file", secret)
    assert refused.code == 3 and "at least 12 characters" in refused.err
    assert "short" not in refused.err.split("characters", 1)[1]


def test_config_sample_is_valid_toml_that_config_check_accepts(sealbox, tmp_path):
    sample = sealbox("config", "sample")
    assert sample.code == 0, sample.err
    doc = tomllib.loads(sample.out)
    assert {"appliance", "keys", "destinations", "secrets", "system", "recordings"} <= set(doc)
    path = tmp_path / "sample.toml"
    path.write_text(sample.out)
    checked = sealbox("config", "check", "--config", path)
    assert checked.code == 0 and "valid" in checked.out, (checked.out, checked.err)


def test_agent_tokens_are_printed_once_stored_as_hashes_and_revoked_at_once(sealbox, agent_server):
    root = agent_server.root
    made = sealbox("agent", "token", "create", "ops-ns", "--root", root)
    assert made.code == 0, made.err
    token = made.out.strip().splitlines()[-1]
    assert len(token) >= 40
    stored = (root / ".sealbox-agent" / "tokens.json").read_text()
    assert "ops-ns" in stored and token not in stored  # only a hash is kept
    listing = sealbox("agent", "token", "list", "--root", root, "--json")
    assert listing.code == 0, listing.err
    rows = [row for row in json.loads(listing.out) if row["namespace"] == "ops-ns"]
    assert len(rows) == 1 and not rows[0]["revoked"] and "sha256" not in rows[0]
    assert token not in listing.out

    url = f"https://127.0.0.1:{agent_server.port}/v1/ns/ops-ns/objects"
    headers = {"Authorization": f"Bearer {token}"}
    tls = ssl.create_default_context(cafile=str(agent_server.cert))
    assert httpx.get(url, headers=headers, verify=tls).status_code == 200
    revoked = sealbox("agent", "token", "revoke", rows[0]["id"], "--root", root)
    assert revoked.code == 0, revoked.err
    answer = httpx.get(url, headers=headers, verify=tls)
    assert answer.status_code == 401  # no restart needed
    after = json.loads(sealbox("agent", "token", "list", "--root", root, "--json").out)
    assert next(r for r in after if r["id"] == rows[0]["id"])["revoked"]
