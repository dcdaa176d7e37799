"""Pinned signers and endorsement chains (src/sealbox/crypto/trust.py)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sealbox.crypto import sshsig
from sealbox.crypto.trust import Endorsement, Trust, endorse
from sealbox.errors import SignatureError


def _key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def test_pinned_signer_is_accepted_and_another_refused_naming_both():
    pinned, other = _key(), _key()
    trust = Trust.of([pinned.public_key()], "the sheets")
    assert trust.judge(pinned.public_key(), "x") is True
    with pytest.raises(SignatureError) as raised:
        trust.judge(other.public_key(), "snapshots/abc")
    message = str(raised.value)
    assert sshsig.fingerprint(other.public_key()) in message
    assert sshsig.fingerprint(pinned.public_key()) in message and "the sheets" in message


def test_nothing_pinned_refuses_unless_unverified_is_accepted():
    with pytest.raises(SignatureError, match="nothing pins"):
        Trust.of([], "nobody").require()
    loose = Trust.of([], "nobody", accept_unverified=True).require()
    assert loose.judge(_key().public_key(), "x") is False  # accepted, but not verified


def test_endorsement_chain_is_followed_from_a_pinned_key_only():
    first, second, third = _key(), _key(), _key()
    chain = [
        endorse(second, third.public_key(), "2026-03-01T00:00:00Z"),  # order does not matter
        endorse(first, second.public_key(), "2026-02-01T00:00:00Z"),
    ]
    trust = Trust.of([first.public_key()], "the sheets").following(chain)
    assert trust.pins(third.public_key()) and trust.pins(second.public_key())
    # From the middle, the chain does not lead back.
    middle = Trust.of([second.public_key()], "x").following(chain)
    assert not middle.pins(first.public_key()) and middle.pins(third.public_key())


def test_a_chain_from_storage_cannot_add_an_attackers_key():
    pinned, attacker, attackers_next = _key(), _key(), _key()
    trust = Trust.of([pinned.public_key()], "the sheets")
    # The attacker vouches for its own key: it is not pinned, so its word counts for nothing.
    self_vouched = endorse(attacker, attackers_next.public_key(), "t")
    # Or claims the pinned key vouched for it, with its own signature under the pinned key's name.
    claimed = endorse(attacker, attacker.public_key(), "t")
    forged = Endorsement(
        previous=sshsig.public_key_line(pinned.public_key()),
        next=sshsig.public_key_line(attacker.public_key()),
        time="t",
        signature=claimed.signature,
    )
    junk = Endorsement.from_dict({"previous": 1, "next": [], "time": None, "signature": ""})
    assert junk is None
    extended = trust.following([self_vouched, forged])
    assert not extended.pins(attacker.public_key())
    assert not extended.pins(attackers_next.public_key())
