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
from sealbox.crypto.trust import Trust
from sealbox.errors import KeyMaterialError, ShareError, SignatureError, WrongKeyError

__all__ = [
    "PassphraseSource",
    "Unlocked",
    "from_identity_file",
    "from_share_files",
    "parse_shares",
    "pinned_trust",
]

PassphraseSource = Callable[[], str]


@dataclass
class Unlocked:
    """Key material ready to decrypt: pyrage identities and what they are known as."""

    identities: list[Any]
    recipients: list[str]
    from_shares: bool = False
    # The appliance signing keys the sheets (or the identity file made from them) pin.
    signers: list[Ed25519PublicKey] = field(default_factory=list)
    expected_key_ids: list[str] = field(default_factory=list)
    signer_dispute: str | None = None  # why the sheets' signers cannot be used (see sheet_signers)
    shares: list[tuple[int, int]] = field(default_factory=list)  # (identifier, 1-based index) used

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
    signers = []
    for line in text.splitlines():  # `keys combine` copies the sheets' signers as comments
        head, _, value = line.partition(":")
        if head.strip().lower() == "# signer" and value.strip():
            try:
                signers.append(sshsig.parse_public_key_line(value))
            except SignatureError as exc:
                raise KeyMaterialError(f"identity file {path}: signer line: {exc}") from exc
    return Unlocked(identities=identities, recipients=recipients, signers=signers)


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


def sheet_signers(parsed: list[shares.ParsedShare]) -> tuple[list[str], str | None]:
    """(the signer lines the sheets agree on, or the reason they do not). Sheets of one
    ceremony name the same signers. Sheets that name different sets, or some sheets naming
    signers while others name none (bare words), are a dispute: one altered sheet must not
    decide alone whom everybody trusts. A dispute is settled only by --signer."""
    named = {p.origin: tuple(" ".join(s.split()[:2]) for s in p.signers) for p in parsed}
    sets = {k: v for k, v in named.items() if v}
    if not sets:
        return [], None
    if len({frozenset(v) for v in sets.values()}) > 1:
        detail = "; ".join(f"{k}: {', '.join(v)}" for k, v in sets.items())
        return [], (
            f"the sheets name different appliance signers ({detail[:300]}): check the sheets,"
            " and pass --signer with the key you trust"
        )
    if len(sets) != len(named):
        bare = ", ".join(k for k, v in named.items() if not v)
        return [], (
            f"only {len(sets)} of {len(named)} sheets name the appliance signer ({bare} name"
            " none): one sheet cannot pin it for the others; pass --signer with the key printed"
            " on the custodians' sheets"
        )
    return list(next(iter(sets.values()))), None


def from_share_files(paths: list[Path], passphrase: PassphraseSource | None) -> Unlocked:
    identity, parsed = rebuild_identity(paths, passphrase)
    identities = agekeys.load_identities(identity, "shares")
    del identity
    signers = []
    lines, dispute = sheet_signers(parsed)
    for line in lines:
        try:
            signers.append(sshsig.parse_public_key_line(line))
        except SignatureError as exc:
            raise ShareError(f"a sheet's Signer: line: {exc}") from exc
    return Unlocked(
        identities=identities,
        recipients=[str(i.to_public()) for i in identities],
        from_shares=True,
        signers=signers,
        expected_key_ids=sorted({p.key_id for p in parsed if p.key_id}),
        signer_dispute=dispute,
        shares=[(p.identifier, p.index + 1) for p in parsed],
    )


def pinned_trust(
    unlocked: Unlocked | None,
    signer_options: list[Ed25519PublicKey],
    local: Trust | None,
    accept_unverified: bool,
) -> Trust:
    """The signers a reader accepts: ``--signer`` keys, those the sheets or identity file pin,
    and (when the reader runs where the backups were made) the local keystore's. Raises
    SignatureError when that is nothing and unverified sources are not accepted."""
    keys: list[Ed25519PublicKey] = list(signer_options)
    sources = ["--signer"] if signer_options else []
    if unlocked is not None and unlocked.signer_dispute and not signer_options:
        raise ShareError(unlocked.signer_dispute)
    if unlocked is not None and unlocked.signers and not unlocked.signer_dispute:
        keys += unlocked.signers
        sources.append("the custodian sheets" if unlocked.from_shares else "the identity file")
    if local is not None and not local.empty:
        keys += local.keys
        sources.append(local.source)
    return Trust.of(keys, " and ".join(sources) or "nobody", accept_unverified).require()
