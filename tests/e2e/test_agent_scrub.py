"""`sealbox agent scrub` on the storage host: the repair an append-only agent refuses the
appliance, done key-free where the objects are."""

from __future__ import annotations

import json
import secrets

from sealbox.crypto import agekeys
from tests.conftest import make_tree


def test_the_storage_host_repairs_what_the_appliance_may_not(
    append_only_agent, sealbox, tmp_path, monkeypatch
):
    namespace = f"pam-{secrets.token_hex(3)}"
    monkeypatch.setenv("SEALBOX_AGENT_TOKEN", append_only_agent.token(namespace))
    monkeypatch.setenv("SEALBOX_AGENT_CA", str(append_only_agent.cert))
    monkeypatch.setenv("SEALBOX_STATE_DIR", str(tmp_path / "state"))
    recipient = agekeys.recipient_of(agekeys.identity_from_secret(agekeys.new_secret()))
    url = f"{append_only_agent.base}/{namespace}/repo"
    assert sealbox("repo", "init", url, "--recipient", recipient).code == 0
    assert sealbox("repo", "backup", url, make_tree(tmp_path / "src")).code == 0
    stored = append_only_agent.root / namespace
    pack = max(
        (p for p in (stored / "repo" / "data").rglob("*") if p.is_file()),
        key=lambda p: p.stat().st_size,
    )
    data = bytearray(pack.read_bytes())
    data[2000:6096] = bytes(4096)
    pack.write_bytes(bytes(data))
    name = str(pack.relative_to(stored / "repo"))

    refused = sealbox("repo", "check", url, "--repair")
    assert refused.code == 5, refused.out + refused.err
    assert f"{name}: repairable from its parity" in refused.out

    looked = sealbox("agent", "scrub", "--root", stored, "--dry-run", "--json")
    assert looked.code == 5
    [repo] = json.loads(looked.out)["repositories"]
    assert repo["repository"] == "repo" and repo["repairable"] == [name]
    [event] = repo["events"]
    assert event["name"] == "scrub.damage_found" and event["fields"]["repairable"] == 1

    healed = sealbox("agent", "scrub", "--root", stored)
    assert healed.code == 0, healed.out + healed.err
    assert "repair.succeeded" in healed.out and name in healed.out
    assert pack.read_bytes() != bytes(data)
    again = sealbox("agent", "scrub", "--root", stored, "--json")
    assert again.code == 0
    assert [e["name"] for e in json.loads(again.out)["repositories"][0]["events"]] == [
        "scrub.clean"
    ]
    assert sealbox("repo", "check", url).code == 0
