"""A secrets backup opens with the standard tools alone: age for the data, ssh-keygen for the signature."""

from __future__ import annotations

import json
import subprocess

from tests.conftest import require_tool


def test_age_cli_decrypts_with_the_combined_identity(appliance, sealbox, tmp_path):
    age = require_tool("age")
    assert sealbox("backup", "secrets", "--config", appliance.config).code == 0
    backup = appliance.backups()[0]
    identity = tmp_path / "identity.txt"
    result = sealbox("keys", "combine", *appliance.share_args(2, 4, 5), "--out", identity)
    assert result.code == 0, result.err
    assert (identity.stat().st_mode & 0o777) == 0o600
    done = subprocess.run(
        [age, "-d", "-i", str(identity), str(backup)], capture_output=True, check=True
    )
    doc = json.loads(done.stdout)
    assert doc["format"] == "sealbox-secrets" and doc["total"] == len(doc["items"]) == 90
    assert doc["items"][0]["secret"]


def test_ssh_keygen_verifies_the_signature(appliance, sealbox, tmp_path):
    ssh_keygen = require_tool("ssh-keygen")
    assert sealbox("backup", "secrets", "--config", appliance.config).code == 0
    backup = appliance.backups()[0]
    manifest = json.loads(backup.with_name(backup.name + ".manifest.json").read_text())
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"sealbox {manifest['signer']}\n")

    def verify(data: bytes) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [
                ssh_keygen,
                "-Y",
                "verify",
                "-f",
                str(allowed),
                "-I",
                "sealbox",
                "-n",
                "sealbox-secrets",
                "-s",
                str(backup) + ".sig",
            ],
            input=data,
            capture_output=True,
            check=False,
        )

    good = verify(backup.read_bytes())
    assert good.returncode == 0, good.stderr
    assert b'Good "sealbox-secrets" signature' in good.stdout + good.stderr
    tampered = bytearray(backup.read_bytes())
    tampered[-1] ^= 1
    assert verify(bytes(tampered)).returncode != 0


def test_age_cli_refuses_a_wrong_identity(appliance, sealbox, tmp_path):
    age = require_tool("age")
    assert sealbox("backup", "secrets", "--config", appliance.config).code == 0
    other = tmp_path / "other.txt"
    subprocess.run([require_tool("age-keygen"), "-o", str(other)], check=True, capture_output=True)
    done = subprocess.run(
        [age, "-d", "-i", str(other), str(appliance.backups()[0])], capture_output=True
    )
    assert done.returncode != 0
