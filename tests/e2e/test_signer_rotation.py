"""`sealbox keys rotate-signer`: a new appliance signing key, vouched for by the old one, so the
custodians' sheets (which name the old key) keep verifying new backups, and the next ceremony's
sheets name both keys."""

from __future__ import annotations

import json

from sealbox.demo import appliance as demo_appliance


def test_old_sheets_verify_backups_signed_after_a_rotation(appliance, sealbox, tmp_path):
    demo_appliance.create_system(appliance.root)
    before = appliance.shares[0].read_text()
    assert sealbox("backup", "system", "--config", appliance.config).code == 0
    rotated = sealbox("keys", "rotate-signer", "--config", appliance.config, "--json")
    assert rotated.code == 0, rotated.err
    new = json.loads(rotated.out)
    assert new["previous"] in before and new["signer"] not in before

    assert sealbox("backup", "secrets", "--config", appliance.config).code == 0
    newest = appliance.backups()[-1]
    opened = sealbox("breakglass", "open", newest, *appliance.share_args(1, 2, 3), "list")
    assert opened.code == 0, opened.err
    assert "UNVERIFIED" not in opened.err

    snap = json.loads(sealbox("backup", "system", "--config", appliance.config, "--json").out)[
        "snapshot"
    ]
    # A custodian's machine: no keystore, only the old sheets, which pin the old key alone.
    restored = sealbox(
        "repo",
        "--state-dir",
        tmp_path / "laptop",
        "restore",
        appliance.remote / "repo",
        snap[:12],
        tmp_path / "out",
        *appliance.share_args(1, 2, 3),
    )
    assert restored.code == 0, restored.err
    assert "UNVERIFIED" not in restored.err

    # The next ceremony's sheets name the new key first, then the old one.
    again = sealbox(
        "keys",
        "ceremony",
        "--shares",
        "2",
        "--threshold",
        "2",
        "--out",
        tmp_path / "sheets",
        "--config",
        appliance.config,
    )
    assert again.code == 0, again.err
    signers = [
        line.split(":", 1)[1].split()[1]
        for line in (tmp_path / "sheets" / "share-01.txt").read_text().splitlines()
        if line.startswith("Signer:")
    ]
    assert signers == [new["signer"].split()[1], new["previous"].split()[1]]
