"""`recordings verify` and `restore recordings` on a machine that never saw the appliance: a chain
re-signed by anyone but a pinned appliance key is refused (it used to accept any self-signed
chain when no keystore was there)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sealbox.config import load_config
from sealbox.crypto.trust import Trust
from sealbox.destinations.repos import open_product_repo_to_read
from sealbox.keys.material import from_share_files
from sealbox.recordings import manifest
from tests.e2e.test_recordings import PATTERN, _record


@pytest.fixture
def recorded(appliance, sealbox, tmp_path):
    root = appliance.root / "appliance" / "recordings"
    for n in range(4):
        _record(root / "2026" / "11" / "24", n)
    base = appliance.config.read_text().split("\n[recordings]")[0]
    appliance.config.write_text(
        base + f'\n[recordings]\ndestination = "remote"\npath = "{root}"\n'
        f"name_pattern = '{PATTERN}'\n"
    )
    result = sealbox("backup", "recordings", "--config", appliance.config, "--json")
    assert result.code == 0 and json.loads(result.out)["stored"] == 4, result.err
    # The custodians' machine: the same config, but a state dir that never saw the appliance.
    fresh = tmp_path / "laptop.toml"
    fresh.write_text(
        re.sub(
            r'(?m)^state_dir = ".*"$',
            f'state_dir = "{tmp_path / "laptop"}"',
            appliance.config.read_text(),
        )
    )
    assert str(tmp_path / "laptop") in fresh.read_text()
    appliance.fresh = fresh
    return appliance


def _resign_every_batch(appliance) -> None:
    """Someone holding a repository key (not the appliance's signing key) rewrites the chain."""
    config = load_config(appliance.config)
    unlocked = from_share_files(appliance.shares[:3], None)
    repo = open_product_repo_to_read(
        config, "remote", unlocked.identities, Trust.of(unlocked.signers, "t")
    )
    forger = Ed25519PrivateKey.generate()
    for info in list(repo.backend.list("recordings/")):
        batch = manifest.decode_batch(repo.backend.get(info.name), repo.keys.index_key, info.name)
        batch.sign(forger)
        repo.backend.put(info.name, manifest.encode_batch(batch, repo.keys.index_key))


def test_fresh_machine_verifies_with_the_sheets_and_refuses_a_resigned_chain(recorded, sealbox):
    shares = recorded.share_args(1, 2, 3)
    ok = sealbox("recordings", "verify", "--config", recorded.fresh, *shares)
    assert ok.code == 0, (ok.out, ok.err)
    _resign_every_batch(recorded)
    bad = sealbox("recordings", "verify", "--config", recorded.fresh, *shares)
    assert bad.code == 5, (bad.out, bad.err)
    assert "not by a key pinned by the custodian sheets" in bad.out
    # Restoring from that chain is refused: its entries are not trusted.
    out = Path(str(recorded.fresh) + ".out")
    restored = sealbox(
        "restore",
        "recordings",
        "--session",
        "sess-00001",
        "--target",
        out,
        *shares,
        "--config",
        recorded.fresh,
    )
    assert restored.code == 5 and "can be trusted" in restored.err, restored.err
    assert not any(out.rglob("*.rec"))


def test_fresh_machine_with_nothing_pinned_refuses(recorded, sealbox, tmp_path):
    identity = tmp_path / "id.txt"
    assert sealbox("keys", "combine", *recorded.share_args(1, 2, 3), "--out", identity).code == 0
    bare = tmp_path / "bare.txt"
    bare.write_text(re.sub(r"(?m)^# signer:.*\n", "", identity.read_text()))
    result = sealbox("recordings", "verify", "--config", recorded.fresh, "--identity", bare)
    assert result.code == 5 and "nothing pins the appliance's signing key" in result.err
