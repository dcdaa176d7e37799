"""Use cases for the master key: ceremony, combine, drill, list.

The ceremony is the only moment the whole master key exists on the appliance: it is generated,
split, checked by recombining, and dropped; the keystore keeps only the public recipient.
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

from sealbox.crypto import agekeys, shares, sshsig
from sealbox.errors import OutputError, ShareError
from sealbox.keys.material import PassphraseSource, rebuild_identity, sheet_signers
from sealbox.keys.store import KeyRecord, Keystore, utc_now

__all__ = ["CeremonyResult", "ceremony", "combine_to_identity", "drill", "render_sheet"]


@dataclass
class CeremonyResult:
    key_id: str
    recipient: str
    created: str
    threshold: int
    shares: int
    signer: str  # the current signing key; the sheets list every signer to accept
    sheets: list[str]
    files: list[Path]


def render_sheet(
    *,
    number: int,
    total: int,
    threshold: int,
    mnemonic: str,
    key_id: str,
    recipient: str,
    created: str,
    appliance: str,
    signers: list[str],
    passphrase: bool,
    opener_sha256: str,
) -> str:
    """One custodian sheet. ``signers``: every appliance signing key to accept, current first
    (older keys keep older backups verifiable after a rotation); ``opener_sha256``: the browser
    opener's (``breakglass.opener_html.opener_sha256()``), so a custodian can check a copy."""
    words = mnemonic.split()
    rows = []
    for start in range(0, len(words), 4):
        rows.append(
            "  ".join(
                f"{i + 1:>2}. {w:<10}" for i, w in enumerate(words[start : start + 4], start)
            ).rstrip()
        )
    signer = signers[0]
    fingerprint = sshsig.fingerprint(sshsig.parse_public_key_line(signer))
    signer_lines = "\n".join(f"Signer:     {line}" for line in signers)
    body = f"""\
        SEALBOX MASTER KEY - CUSTODIAN SHARE {number} OF {total}
        Any {threshold} of the {total} shares open the secrets backups of appliance {appliance}.
        Keep this sheet offline and private. Never type it into the appliance.

        Key id:     {key_id}
        Recipient:  {recipient}
        Created:    {created}
        Appliance:  {appliance}
        {{signers}}
        Signer fingerprint: {fingerprint}
        Passphrase: {"yes - the custodians' passphrase is needed too" if passphrase else "no"}
        Share:      {number} of {total}, threshold {threshold}

        Share words ({len(words)}):
        {{rows}}

        BEGIN SHARE
        {{mnemonic}}
        END SHARE

        TO OPEN A SECRETS BACKUP (on any offline machine with Python 3.11+: pip install sealbox)
          Gather {threshold} custodians' sheets as files, then:
            sealbox breakglass verify secrets-{appliance}-<time>.age
            sealbox breakglass open secrets-{appliance}-<time>.age --share s1.txt --share s2.txt ... list
            sealbox breakglass open FILE --share ... search NAME
            sealbox breakglass open FILE --share ... show ITEM_ID --reveal
            sealbox breakglass open FILE --share ... export --format kdbx --out vault.kdbx

        TO OPEN IT IN A BROWSER (any machine, offline, nothing to install)
          Open sealbox-opener-*.html (beside the backups at the destination, or written by
          `sealbox breakglass opener --out opener.html`) after checking its SHA-256:
            Opener SHA-256: {opener_sha256}
            (sha256sum opener.html; on Windows: Get-FileHash opener.html)
          Give it the three backup files and {threshold} sheets (files or typed words).

        TO OPEN IT WITH THE STANDARD age TOOL (bash; the key and secrets stay off disk)
            age -d -i <(sealbox keys combine --share s1.txt --share s2.txt ...) \\
                secrets-{appliance}-<time>.age | less
          The signature checks with OpenSSH alone:
            echo "sealbox {signer}" > allowed_signers
            ssh-keygen -Y verify -f allowed_signers -I sealbox -n sealbox-secrets \\
                -s FILE.sig < FILE
        """
    text = textwrap.dedent(body)
    return (
        text.replace("{rows}", "\n".join(rows))
        .replace("{mnemonic}", "\n".join(textwrap.wrap(mnemonic, 72)))
        .replace("{signers}", signer_lines)
    )


def ceremony(
    keystore: Keystore,
    *,
    appliance: str,
    total: int,
    threshold: int,
    opener_sha256: str,
    passphrase: str = "",
    out_dir: Path | None = None,
) -> CeremonyResult:
    """Make a new master key, split it into sheets, keep only its public part; return the sheets."""
    if not all(32 <= ord(c) <= 126 for c in passphrase):
        raise ShareError("a share passphrase uses printable ASCII characters only")
    files = [out_dir / f"share-{n:02d}.txt" for n in range(1, total + 1)] if out_dir else []
    existing = [f for f in files if f.exists()]
    if existing:
        raise OutputError(f"{existing[0]} exists already: refusing to overwrite a custodian share")
    secret = agekeys.new_secret()
    try:
        recipient = agekeys.recipient_of(agekeys.identity_from_secret(secret))
        mnemonics = shares.split(
            secret, shares=total, threshold=threshold, passphrase=passphrase.encode()
        )
        # Prove the split before anyone walks away with a sheet: the first quorum must rebuild it.
        check = shares.combine(
            [shares.parse_share(m, "check") for m in mnemonics[:threshold]], passphrase.encode()
        )
        if check != secret:
            raise ShareError("internal check failed: the shares do not rebuild the key")
        check[:] = bytes(len(check))
    finally:
        secret[:] = bytes(len(secret))
    created = utc_now()
    key_id = agekeys.key_id(recipient)
    keystore.signing_key()  # created on first use: the sheets must name it
    signers = keystore.signer_lines()
    sheets = [
        render_sheet(
            number=n,
            total=total,
            threshold=threshold,
            mnemonic=m,
            key_id=key_id,
            recipient=recipient,
            created=created,
            appliance=appliance,
            signers=signers,
            passphrase=bool(passphrase),
            opener_sha256=opener_sha256,
        )
        for n, m in enumerate(mnemonics, 1)
    ]
    if out_dir is not None:
        try:
            out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            for path, sheet in zip(files, sheets, strict=True):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(sheet)
        except OSError as exc:
            raise OutputError(
                f"cannot write the share sheets in {out_dir}: {exc.strerror}"
            ) from exc
    keystore.add(
        KeyRecord(
            id=key_id,
            recipient=recipient,
            created=created,
            threshold=threshold,
            shares=total,
            passphrase=bool(passphrase),
        )
    )
    return CeremonyResult(key_id, recipient, created, threshold, total, signers[0], sheets, files)


def combine_to_identity(paths: list[Path], passphrase: PassphraseSource | None) -> tuple[str, str]:
    """(identity file text, key id) rebuilt from shares. The sheets' signers go along as
    ``# signer:`` comments (age ignores them), so readers given ``--identity`` pin them too."""
    identity, parsed = rebuild_identity(paths, passphrase)
    recipient = agekeys.recipient_of(identity)
    kid = agekeys.key_id(recipient)
    lines, dispute = sheet_signers(parsed)
    if dispute:
        raise ShareError(f"{dispute} (the identity file would pin it)")
    signers = "".join(f"# signer: {line}\n" for line in lines)
    text = (
        f"# created: {utc_now()}\n# key id: {kid}\n# public key: {recipient}\n{signers}{identity}\n"
    )
    return text, kid


def drill(keystore: Keystore, paths: list[Path], passphrase: PassphraseSource | None) -> KeyRecord:
    """Prove the shares rebuild the current key; record the drill. Nothing is written but the date."""
    current = keystore.require_current()
    identity, _ = rebuild_identity(paths, passphrase)
    recipient = agekeys.recipient_of(identity)
    del identity
    if recipient != current.recipient:
        known = {r.recipient: r for r in keystore.records()}
        older = known.get(recipient)
        if older is not None:
            raise ShareError(
                f"these shares rebuild the older key {older.id}, not the current key {current.id}"
            )
        raise ShareError(
            f"these shares rebuild key {agekeys.key_id(recipient)}, not the current key {current.id}"
            " (wrong passphrase, or shares of another appliance?)"
        )
    keystore.record_drill(current.id)
    return current
