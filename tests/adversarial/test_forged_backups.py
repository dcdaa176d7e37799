"""Forged secrets backups, made as an attacker would: the master key's public recipient (printed on
every sheet) and a fresh Ed25519 key. Custodians must never open one without saying so, however
they bring their key (sheets, bare words, an identity file)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sealbox.breakglass import document, package
from sealbox.crypto import agekeys, sshsig
from sealbox.items import Item


def _field(sheet: Path, name: str) -> str:
    return next(
        line.split(":", 1)[1].strip()
        for line in sheet.read_text().splitlines()
        if line.startswith(f"{name}:")
    )


@pytest.fixture
def forged(appliance, sealbox) -> tuple[Path, Path, Ed25519PrivateKey]:
    """(the real backup, a newer forged one beside it, the forger's key)."""
    assert sealbox("backup", "secrets", "--config", appliance.config).code == 0
    real = appliance.backups()[0]
    recipient = _field(appliance.shares[0], "Recipient")
    items = [
        Item(id="cred-00001", type="credential", name="db1 root", secret={"password": "attacker"})
    ]
    plaintext, counts = document.encode(
        iter(items),
        appliance="demo-pam",
        created="2099-01-01T00:00:00Z",
        keys=[{"id": agekeys.key_id(recipient), "recipient": recipient, "role": "master"}],
        sealbox_version="0.1.0",
    )
    ciphertext = agekeys.encrypt(plaintext, [recipient])
    key = Ed25519PrivateKey.generate()
    name = package.backup_name("demo-pam", "20990101T000000Z")
    sealed = package.seal(
        ciphertext,
        name=name,
        appliance="demo-pam",
        created="2099-01-01T00:00:00Z",
        keys=[{"id": agekeys.key_id(recipient), "recipient": recipient, "role": "master"}],
        counts=counts,
        signer=key,
        sealbox_version="0.1.0",
    )
    path = appliance.remote / name
    path.write_bytes(bytes(sealed.ciphertext))
    path.with_name(name + ".sig").write_text(sealed.signature)
    path.with_name(name + ".manifest.json").write_bytes(sealed.manifest)
    return real, path, key


def _refused(result, code: int, text: str) -> None:
    assert result.code == code, (result.code, result.out, result.err)
    assert text in result.err, result.err
    assert "attacker" not in result.out and "Traceback" not in result.err
    assert len([x for x in result.err.splitlines() if x.startswith("sealbox: error:")]) == 1


def test_forged_backup_is_refused_with_the_sheets(appliance, sealbox, forged):
    real, fake, _ = forged
    shares = appliance.share_args(1, 2, 3)
    _refused(
        sealbox("breakglass", "open", fake, *shares, "show", "cred-00001", "--reveal"),
        5,
        "not by a key pinned by the custodian sheets",
    )
    assert sealbox("breakglass", "open", real, *shares, "list").code == 0


def test_forged_backup_is_refused_with_an_identity_file(appliance, sealbox, forged, tmp_path):
    _, fake, _ = forged
    identity = tmp_path / "id.txt"
    assert sealbox("keys", "combine", *appliance.share_args(1, 2, 3), "--out", identity).code == 0
    assert "# signer: ssh-ed25519 " in identity.read_text()
    _refused(
        sealbox("breakglass", "open", fake, "--identity", identity, "list"),
        5,
        "not by a key pinned by the identity file",
    )
    bare = tmp_path / "bare.txt"  # an identity as `age-keygen` or an older combine writes it
    bare.write_text(re.sub(r"(?m)^# signer:.*\n", "", identity.read_text()))
    _refused(
        sealbox("breakglass", "open", fake, "--identity", bare, "list"),
        5,
        "nothing pins the appliance's signing key",
    )


def test_forged_backup_is_refused_with_bare_words(appliance, sealbox, forged, tmp_path):
    _, fake, _ = forged
    args = []
    for n in (1, 2, 3):  # just the words, as a custodian might type them from the sheet
        text = appliance.shares[n - 1].read_text()
        words = text.split("BEGIN SHARE")[1].split("END SHARE")[0]
        bare = tmp_path / f"words-{n}.txt"
        bare.write_text(words)
        args += ["--share", str(bare)]
    _refused(
        sealbox("breakglass", "open", fake, *args, "list"),
        5,
        "nothing pins the appliance's signing key",
    )


def test_sheets_naming_different_signers_are_refused_not_merged(
    appliance, sealbox, forged, tmp_path
):
    """One altered sheet must not slip the forger's key in (it used to be silently dropped, and
    the signer inside the .sig trusted)."""
    _, fake, key = forged
    altered = tmp_path / "share-02.txt"
    text = appliance.shares[1].read_text()
    altered.write_text(
        re.sub(r"(?m)^Signer: .*$", "Signer:     " + sshsig.public_key_line(key.public_key()), text)
    )
    args = ["--share", str(appliance.shares[0]), "--share", str(altered)]
    args += ["--share", str(appliance.shares[2])]
    _refused(
        sealbox("breakglass", "open", fake, *args, "list"),
        4,
        "the sheets name different appliance signers",
    )


def test_unverified_is_an_explicit_choice_and_says_so(appliance, sealbox, forged):
    _, fake, _ = forged
    result = sealbox(
        "breakglass", "open", fake, *appliance.share_args(1, 2, 3), "--unverified", "list"
    )
    assert result.code == 0, result.err
    assert "UNVERIFIED" in result.err
