"""The signer-endorsement format and the trust rules' edges (pinned by mutation testing,
docs/testing.md): the signed bytes, the JSON fields, junk left out, and a followed chain
keeping where the trust came from."""

from __future__ import annotations

import itertools
import re

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sealbox.crypto import sshsig
from sealbox.crypto.trust import MAX_CHAIN, Endorsement, Trust, endorse
from sealbox.errors import SignatureError

OLD = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
NEW = Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64)))


def line(key: Ed25519PrivateKey) -> str:
    return sshsig.public_key_line(key.public_key())


def test_an_endorsement_signs_exactly_these_bytes():
    link = endorse(OLD, NEW.public_key(), "2026-01-02T03:04:05Z")
    assert (link.previous, link.next, link.time) == (line(OLD), line(NEW), "2026-01-02T03:04:05Z")
    expected = (
        f'{{"format":"sealbox-signer-endorsement","next":"{line(NEW)}","previous":"{line(OLD)}",'
        '"time":"2026-01-02T03:04:05Z"}'
    ).encode()
    assert link.body() == expected
    signer = sshsig.verify(link.signature, expected, sshsig.NS_SIGNER)
    assert sshsig.same_key(signer, OLD.public_key())


def test_an_endorsement_is_stored_as_four_named_strings():
    link = endorse(OLD, NEW.public_key(), "t")
    stored = link.to_dict()
    assert stored == {
        "previous": line(OLD),
        "next": line(NEW),
        "time": "t",
        "signature": link.signature,
    }
    assert Endorsement.from_dict(orjson.loads(orjson.dumps(stored))) == link


@pytest.mark.parametrize("missing", ["previous", "next", "time", "signature"])
def test_an_endorsement_without_a_field_is_junk(missing):
    stored = endorse(OLD, NEW.public_key(), "t").to_dict()
    del stored[missing]
    assert Endorsement.from_dict(stored) is None
    assert Endorsement.from_dict({**stored, missing: 1}) is None


def test_endorsement_fields_are_bounded():
    fields = {"previous": "p", "next": "n", "time": "t", "signature": "s" * 4095}
    assert Endorsement.from_dict(fields) == Endorsement("p", "n", "t", "s" * 4095)
    assert Endorsement.from_dict({**fields, "signature": "s" * 4096}) is None


def test_a_list_read_from_storage_keeps_the_endorsements_and_drops_junk():
    a = endorse(OLD, NEW.public_key(), "1")
    b = endorse(NEW, OLD.public_key(), "2")
    value = [a.to_dict(), "junk", None, {"previous": "p"}, b.to_dict()]
    assert Endorsement.parse_list(value) == [a, b]
    assert Endorsement.parse_list({"0": a.to_dict()}) == []
    assert Endorsement.parse_list(None) == []


def test_the_same_key_pinned_twice_is_one_key():
    again = Ed25519PrivateKey.from_private_bytes(bytes(range(32))).public_key()
    trust = Trust.of([OLD.public_key(), again, NEW.public_key()], "sheets")
    assert [sshsig.public_key_line(k) for k in trust.keys] == [line(OLD), line(NEW)]


def test_nothing_pinned_says_how_to_pin():
    with pytest.raises(SignatureError) as e:
        Trust.of([], "nothing").require()
    assert e.value.args[0] == (
        "nothing pins the appliance's signing key (no Signer: line on the sheets, no --signer,"
        " no keystore here): pass --signer 'ssh-ed25519 ...' as printed on a custodian sheet,"
        " or --unverified to accept a source nobody can vouch for"
    )
    assert Trust.of([], "x", accept_unverified=True).require().empty


def test_a_refusal_lists_every_pinned_key_or_none():
    stranger = Ed25519PrivateKey.generate().public_key()
    both = Trust.of([OLD.public_key(), NEW.public_key()], "the sheets")
    with pytest.raises(SignatureError) as e:
        both.judge(stranger, "backup.age")
    pinned = f"{sshsig.fingerprint(OLD.public_key())}, {sshsig.fingerprint(NEW.public_key())}"
    assert e.value.args[0] == (
        f"backup.age: signed by {sshsig.fingerprint(stranger)}, not by a key pinned by the sheets"
        f" ({pinned}): forged, or signed by another appliance"
    )
    with pytest.raises(SignatureError, match=re.escape("pinned by nobody (none): forged")):
        Trust(keys=(), source="nobody").judge(stranger, "x")


def test_a_followed_chain_keeps_the_source_and_the_unverified_choice():
    trust = Trust.of([OLD.public_key()], "the sheets", accept_unverified=True)
    followed = trust.following([endorse(OLD, NEW.public_key(), "t")])
    assert followed.pins(NEW.public_key())
    assert followed.source == "the sheets" and followed.accept_unverified is True


def test_a_chain_is_followed_in_any_order_past_junk_links():
    third = Ed25519PrivateKey.generate()
    first_link = endorse(OLD, NEW.public_key(), "1")
    second_link = endorse(NEW, third.public_key(), "2")
    unparsable = Endorsement("not a key", line(NEW), "0", first_link.signature)
    stale = endorse(OLD, NEW.public_key(), "0")  # its successor is accepted by then: skipped
    forged = Endorsement(line(OLD), line(third), "3", first_link.signature)
    chain = [second_link, unparsable, forged, first_link, stale]
    followed = Trust.of([OLD.public_key()], "sheets").following(chain)
    assert followed.pins(NEW.public_key()) and followed.pins(third.public_key())
    assert len(followed.keys) == 3


def test_a_chain_longer_than_the_limit_is_cut():
    keys = [OLD] + [Ed25519PrivateKey.generate() for _ in range(MAX_CHAIN + 1)]
    chain = [
        endorse(a, b.public_key(), str(i)) for i, (a, b) in enumerate(itertools.pairwise(keys))
    ]
    followed = Trust.of([OLD.public_key()], "sheets").following(chain)
    assert followed.pins(keys[MAX_CHAIN].public_key())
    assert not followed.pins(keys[MAX_CHAIN + 1].public_key())
