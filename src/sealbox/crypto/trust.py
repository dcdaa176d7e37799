"""Which appliance signing keys a reader accepts: the *pinned* signers, and signer rotations.

Everything custodians restore or open is signed by the appliance's Ed25519 key. A reader never
takes the signer a file names at its word: it accepts only keys it *pinned* beforehand, from
the custodians' sheets (``Signer:`` lines), an identity file made from them (``# signer:``),
``--signer``, or the keystore of the appliance it runs on. With nothing pinned, a reader refuses
unless the person explicitly accepts an unverified source (``--unverified``), and then every
verdict says "unverified".

A signing key can be replaced (``sealbox keys rotate-signer``): the old key signs an
*endorsement* naming its successor (namespace ``sealbox-signer``). Signed objects carry the
chain of endorsements, so a reader that pinned an older key follows the chain to the newer one;
each link is checked with a key already accepted, so a chain read from untrusted storage can only
add keys that a pinned key vouched for.

Pure code: keys and bytes in, verdicts out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sealbox.crypto import sshsig
from sealbox.errors import SignatureError

__all__ = ["ENDORSEMENT_FORMAT", "Endorsement", "Trust", "endorse"]

ENDORSEMENT_FORMAT = "sealbox-signer-endorsement"
MAX_CHAIN = 64  # endorsements a reader follows: rotations are rare, a long chain is junk


@dataclass(frozen=True)
class Endorsement:
    """``previous`` (an OpenSSH public key line) vouches that ``next`` signs for it from ``time``."""

    previous: str
    next: str
    time: str
    signature: str

    def body(self) -> bytes:
        return orjson.dumps(
            {
                "format": ENDORSEMENT_FORMAT,
                "previous": self.previous,
                "next": self.next,
                "time": self.time,
            },
            option=orjson.OPT_SORT_KEYS,
        )

    def to_dict(self) -> dict[str, str]:
        return {
            "previous": self.previous,
            "next": self.next,
            "time": self.time,
            "signature": self.signature,
        }

    @classmethod
    def from_dict(cls, value: Any) -> Endorsement | None:
        """An endorsement from JSON, or None when it is not one (junk is ignored, not fatal)."""
        if not isinstance(value, dict):
            return None
        fields = [value.get(k) for k in ("previous", "next", "time", "signature")]
        strings = [f for f in fields if isinstance(f, str) and len(f) < 4096]
        if len(strings) != len(fields):
            return None
        return cls(*strings)

    @classmethod
    def parse_list(cls, value: Any) -> list[Endorsement]:
        """The endorsements in a JSON value read from anywhere (a manifest, a snapshot, the
        keystore): what is not a list, or not an endorsement, is left out."""
        found = (cls.from_dict(v) for v in (value if isinstance(value, list) else []))
        return [e for e in found if e is not None]


def endorse(old: Ed25519PrivateKey, new: Ed25519PublicKey, time: str) -> Endorsement:
    """The old signing key's statement that ``new`` succeeds it."""
    unsigned = Endorsement(
        sshsig.public_key_line(old.public_key()), sshsig.public_key_line(new), time, ""
    )
    signature = sshsig.sign(old, unsigned.body(), sshsig.NS_SIGNER)
    return Endorsement(unsigned.previous, unsigned.next, time, signature)


@dataclass(frozen=True)
class Trust:
    """The signers a reader accepts. ``source`` says where they came from, for messages."""

    keys: tuple[Ed25519PublicKey, ...]
    source: str
    accept_unverified: bool = False

    @classmethod
    def of(
        cls, keys: Iterable[Ed25519PublicKey], source: str, accept_unverified: bool = False
    ) -> Trust:
        unique: dict[str, Ed25519PublicKey] = {}
        for key in keys:
            unique.setdefault(sshsig.public_key_line(key), key)
        return cls(tuple(unique.values()), source, accept_unverified)

    @property
    def empty(self) -> bool:
        return not self.keys

    def require(self) -> Trust:
        """Self, or SignatureError when nothing is pinned and unverified sources are not accepted."""
        if self.empty and not self.accept_unverified:
            raise SignatureError(
                "nothing pins the appliance's signing key (no Signer: line on the sheets, no"
                " --signer, no keystore here): pass --signer 'ssh-ed25519 ...' as printed on a"
                " custodian sheet, or --unverified to accept a source nobody can vouch for"
            )
        return self

    def pins(self, key: Ed25519PublicKey) -> bool:
        return any(sshsig.same_key(key, k) for k in self.keys)

    def judge(self, key: Ed25519PublicKey, what: str) -> bool:
        """True when ``key`` is pinned; False when it is not but unverified sources are accepted;
        SignatureError otherwise (naming the signer and who pinned what)."""
        if self.pins(key):
            return True
        if self.accept_unverified:
            return False
        pinned = ", ".join(sshsig.fingerprint(k) for k in self.keys) or "none"
        raise SignatureError(
            f"{what}: signed by {sshsig.fingerprint(key)}, not by a key pinned by {self.source}"
            f" ({pinned}): forged, or signed by another appliance"
        )

    def following(self, chain: Iterable[Endorsement]) -> Trust:
        """Trust extended along endorsements whose signer is already accepted (each link is
        checked; links that do not verify, or lead from unaccepted keys, are ignored)."""
        keys = list(self.keys)
        links = list(chain)[:MAX_CHAIN]

        def accepted(key: Ed25519PublicKey) -> bool:
            return any(sshsig.same_key(key, k) for k in keys)

        changed = True
        while changed:
            changed = False
            for link in links:
                try:
                    previous = sshsig.parse_public_key_line(link.previous)
                    successor = sshsig.parse_public_key_line(link.next)
                except SignatureError:
                    continue
                if accepted(successor) or not accepted(previous):
                    continue
                try:
                    signer = sshsig.verify(link.signature, link.body(), sshsig.NS_SIGNER)
                except SignatureError:
                    continue
                if sshsig.same_key(signer, previous):
                    keys.append(successor)
                    changed = True
        if len(keys) == len(self.keys):
            return self
        return Trust(tuple(keys), self.source, self.accept_unverified)
