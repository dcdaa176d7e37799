"""Turn what a custodian brings (an identity file, or share sheets and a passphrase) into keys.

The rebuilt secret lives in a ``bytearray`` that is zeroed as soon as the age identity object is
made; pyrage keeps the key inside Rust memory from then on. Python ``str`` copies cannot be wiped,
so the identity string is dropped right away (see ``docs/design/threat-model.md``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sealbox.crypto import agekeys, shares, sshsig
from sealbox.errors import KeyMaterialError, ShareError, WrongKeyError

__all__ = ["PassphraseSource", "Unlocked", "from_identity_file", "from_share_files", "parse_shares"]

PassphraseSource = Callable[[], str]


@dataclass
class Unlocked:
    """Key material ready to decrypt: pyrage identities and what they are known as."""

    identities: list[Any]
    recipients: list[str]
    from_shares: bool = False
    signer: Ed25519PublicKey | None = None  # the appliance key the share sheets name
    expected_key_ids: list[str] = field(default_factory=list)

    @property
    def key_ids(self) -> list[str]:
        return [agekeys.key_id(r) for r in self.recipients]


def from_identity_file(path: Path) -> Unlocked:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyMaterialError(
            f"cannot read identity file {path}: {getattr(exc, 'strerror', None) or exc}"
        ) from exc
    identities = agekeys.load_identities(text, str(path))
    recipients = [str(i.to_public()) for i in identities]
    return Unlocked(identities=identities, recipients=recipients)


def parse_shares(paths: list[Path]) -> list[shares.ParsedShare]:
    parsed = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ShareError(
                f"cannot read share {path}: {getattr(exc, 'strerror', None) or exc}"
            ) from exc
        parsed.append(shares.parse_share(text, str(path)))
    return parsed


def rebuild_identity(
    paths: list[Path], passphrase: PassphraseSource | None
) -> tuple[str, list[shares.ParsedShare]]:
    """The age identity string the shares rebuild, checked against the key id on the sheets."""
    parsed = parse_shares(paths)
    needs_passphrase = any(p.passphrase for p in parsed)
    secret_passphrase = ""
    if passphrase is not None:
        secret_passphrase = passphrase()
    elif needs_passphrase:
        raise ShareError("these shares were made with a passphrase: add --passphrase")
    if not all(32 <= ord(c) <= 126 for c in secret_passphrase):
        raise ShareError("a share passphrase uses printable ASCII characters only")
    secret = shares.combine(parsed, secret_passphrase.encode())
    try:
        identity = agekeys.identity_from_secret(secret)
    finally:
        secret[:] = bytes(len(secret))
    recipient = agekeys.recipient_of(identity)
    expected = {p.key_id for p in parsed if p.key_id}
    if expected and agekeys.key_id(recipient) not in expected:
        hint = (
            "wrong passphrase"
            if (passphrase is not None or needs_passphrase)
            else "missing --passphrase"
        )
        raise WrongKeyError(
            f"the shares rebuild key {agekeys.key_id(recipient)}, but their sheets name key"
            f" {', '.join(sorted(expected))}: {hint}?"
        )
    return identity, parsed


def from_share_files(paths: list[Path], passphrase: PassphraseSource | None) -> Unlocked:
    identity, parsed = rebuild_identity(paths, passphrase)
    identities = agekeys.load_identities(identity, "shares")
    del identity
    signers = {p.signer for p in parsed if p.signer}
    signer = sshsig.parse_public_key_line(signers.pop()) if len(signers) == 1 else None
    return Unlocked(
        identities=identities,
        recipients=[str(i.to_public()) for i in identities],
        from_shares=True,
        signer=signer,
        expected_key_ids=sorted({p.key_id for p in parsed if p.key_id}),
    )
