"""Helpers for the opener tests: a backup forged as an attacker would make it."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sealbox.breakglass import document, package
from sealbox.crypto import agekeys
from sealbox.items import Item


def sheet_field(sheet: Path, name: str) -> str:
    return next(
        line.split(":", 1)[1].strip()
        for line in sheet.read_text().splitlines()
        if line.startswith(f"{name}:")
    )


def forge_backup(appliance, out_dir: Path, recipient_from: Path | None = None) -> Path:
    """A backup sealed to the custodians' public recipient (printed on every sheet) and signed
    by a fresh key: what anyone who saw a sheet can make."""
    recipient = sheet_field(recipient_from or appliance.shares[0], "Recipient")
    keys = [{"id": agekeys.key_id(recipient), "recipient": recipient, "role": "master"}]
    items = [
        Item(id="cred-00001", type="credential", name="db1 root", secret={"password": "attacker"})
    ]
    plaintext, counts = document.encode(
        iter(items),
        appliance="demo-pam",
        created="2099-01-01T00:00:00Z",
        keys=keys,
        sealbox_version="0.1.0",
    )
    name = package.backup_name("demo-pam", "20990101T000000Z")
    sealed = package.seal(
        agekeys.encrypt(plaintext, [recipient]),
        name=name,
        appliance="demo-pam",
        created="2099-01-01T00:00:00Z",
        keys=keys,
        counts=counts,
        signer=Ed25519PrivateKey.generate(),
        sealbox_version="0.1.0",
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    path.write_bytes(bytes(sealed.ciphertext))
    path.with_name(name + ".sig").write_text(sealed.signature)
    path.with_name(name + ".manifest.json").write_bytes(sealed.manifest)
    return path
