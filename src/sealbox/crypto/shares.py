"""Split the master-key secret into SLIP-39 mnemonic shares and combine them again.

SLIP-39 (``shamir-mnemonic``, the reference implementation) gives us Shamir secret sharing over
GF(256), an RS1024 checksum per share (a mistyped word is caught), a random 15-bit identifier per
split (shares of two ceremonies are told apart) and an optional passphrase. A wrong passphrase is
*not* detected by SLIP-39: it silently yields another secret. Callers therefore compare the key id
of the result with an expected one (the key-check value, see :func:`sealbox.crypto.agekeys.key_id`).
"""

from __future__ import annotations

from dataclasses import dataclass

import shamir_mnemonic
from shamir_mnemonic import MnemonicError, Share

from sealbox.crypto.agekeys import SECRET_LEN
from sealbox.errors import ShareError

__all__ = ["ParsedShare", "combine", "parse_share", "split"]

MAX_SHARES = 16


@dataclass(frozen=True)
class ParsedShare:
    """One share as read from a custodian sheet: its words and what the sheet says about it."""

    origin: str
    mnemonic: str
    identifier: int
    index: int
    threshold: int
    key_id: str | None = None
    recipient: str | None = None
    signers: tuple[str, ...] = ()  # the appliance signing keys to accept, current first
    passphrase: bool | None = None


def split(
    secret: bytes | bytearray, *, shares: int, threshold: int, passphrase: bytes = b""
) -> list[str]:
    """Split a 32-byte secret into ``shares`` mnemonics, any ``threshold`` of which rebuild it."""
    if len(secret) != SECRET_LEN:
        raise ShareError(f"the secret to split must be {SECRET_LEN} bytes")
    if not 1 <= threshold <= shares <= MAX_SHARES:
        raise ShareError(
            f"need 1 <= threshold <= shares <= {MAX_SHARES}, got {threshold}-of-{shares}"
        )
    if threshold == 1 and shares > 1:
        # SLIP-39 allows 1-of-N only as N copies of the same words; refuse the confusing case.
        raise ShareError("a threshold of 1 with several shares gives every custodian the whole key")
    groups = shamir_mnemonic.generate_mnemonics(
        group_threshold=1,
        groups=[(threshold, shares)],
        master_secret=bytes(secret),
        passphrase=passphrase,
    )
    return list(groups[0])


def _words(text: str) -> list[str]:
    """Words of a mnemonic, tolerant of numbering ("1. academic") and case."""
    out = []
    for token in text.replace(",", " ").split():
        token = token.strip().lower()
        if token.rstrip(".").isdigit():
            continue
        out.append(token)
    return out


def _fields(lines: list[str], name: str) -> list[str]:
    prefix = name.lower() + ":"
    return [
        line.split(":", 1)[1].strip() for line in lines if line.strip().lower().startswith(prefix)
    ]


def _field(lines: list[str], name: str) -> str | None:
    found = _fields(lines, name)
    return found[0] if found else None


def parse_share(text: str, origin: str) -> ParsedShare:
    """Read one share from a custodian sheet, or from a file holding just the words.

    A sheet has the words between ``BEGIN SHARE`` and ``END SHARE`` lines and optional
    ``Key id:``, ``Recipient:``, ``Signer:`` (one per signing key to accept) and ``Passphrase:``
    lines. Raises ShareError naming the
    file and, for an unknown word, its position.
    """
    lines = text.splitlines()
    upper = [line.strip().upper() for line in lines]
    if "BEGIN SHARE" in upper and "END SHARE" in upper:
        body = lines[upper.index("BEGIN SHARE") + 1 : upper.index("END SHARE")]
    else:
        body = lines
    words = _words(" ".join(body))
    if not words:
        raise ShareError(f"{origin}: no share words found")
    wordlist = set(shamir_mnemonic.wordlist.WORDLIST)
    for position, word in enumerate(words, 1):
        if word not in wordlist:
            raise ShareError(
                f"{origin}: word {position} {word!r} is not a SLIP-39 word (mistyped?)"
            )
    mnemonic = " ".join(words)
    try:
        share = Share.from_mnemonic(mnemonic)
    except MnemonicError as exc:
        raise ShareError(f"{origin}: invalid share ({_reason(exc)})") from exc
    passphrase_field = _field(lines, "Passphrase")
    return ParsedShare(
        origin=origin,
        mnemonic=mnemonic,
        identifier=share.identifier,
        index=share.index,
        threshold=share.member_threshold,
        key_id=_field(lines, "Key id"),
        recipient=_field(lines, "Recipient"),
        signers=tuple(f for f in _fields(lines, "Signer") if f),
        passphrase=None if passphrase_field is None else passphrase_field.lower().startswith("yes"),
    )


def _reason(exc: MnemonicError) -> str:
    text = str(exc).rstrip(".")
    if "checksum" in text.lower():
        return "checksum failed: a word is mistyped or the words are out of order"
    return text[:1].lower() + text[1:]


def combine(parsed: list[ParsedShare], passphrase: bytes = b"") -> bytearray:
    """Rebuild the secret from a quorum of shares; raises ShareError saying what is wrong."""
    if not parsed:
        raise ShareError("no shares given")
    ids = {p.identifier for p in parsed}
    if len(ids) > 1:
        names = ", ".join(f"{p.origin} (set {p.identifier})" for p in parsed)
        raise ShareError(f"the shares come from different ceremonies: {names}")
    seen: dict[int, str] = {}
    for p in parsed:
        if p.index in seen:
            raise ShareError(
                f"{p.origin} is the same share as {seen[p.index]} (share #{p.index + 1})"
            )
        seen[p.index] = p.origin
    threshold = parsed[0].threshold
    if len(parsed) < threshold:
        raise ShareError(f"{len(parsed)} share(s) given, this key needs {threshold}")
    try:
        # SLIP-39 wants exactly a quorum; extra (distinct, same-set) shares are simply not needed.
        quorum = [p.mnemonic for p in parsed[:threshold]]
        secret = shamir_mnemonic.combine_mnemonics(quorum, passphrase)
    except MnemonicError as exc:
        raise ShareError(f"the shares do not combine ({_reason(exc)})") from exc
    return bytearray(secret)
