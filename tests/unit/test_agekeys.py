import pyrage
import pytest

from sealbox.crypto import agekeys
from sealbox.errors import KeyMaterialError


def test_secret_roundtrips_through_the_age_identity_string():
    secret = agekeys.new_secret()
    identity = agekeys.identity_from_secret(secret)
    assert identity.startswith("AGE-SECRET-KEY-1")
    assert agekeys.identity_to_secret(identity) == secret


def test_identity_made_from_raw_bytes_decrypts_what_pyrage_encrypts():
    identity = agekeys.identity_from_secret(bytes(range(32)))
    recipient = agekeys.recipient_of(identity)
    ciphertext = agekeys.encrypt(b"secret", [recipient])
    assert agekeys.decrypt(ciphertext, agekeys.load_identities(identity, "t")) == b"secret"
    with pytest.raises(pyrage.DecryptError):
        other = agekeys.identity_from_secret(bytes(32))
        agekeys.decrypt(ciphertext, agekeys.load_identities(other, "t"))


def test_known_vector_secret_to_recipient_and_key_id():
    # Test vector from docs/design/format.md ("Master key"): secret bytes 0x00..0x1f.
    identity = agekeys.identity_from_secret(bytes(range(32)))
    assert identity == "AGE-SECRET-KEY-1QQQSYQCYQ5RQWZQFPG9SCRGWPUGPZYSNZS23V9CCRYDPK8QARC0SWRYDWG"
    recipient = agekeys.recipient_of(identity)
    assert recipient == "age13aqvttdk3ujkyjh9kg2w5an6dmy5mq5a84a4uxk3hfhnugfc9p0sy5p2wh"
    assert agekeys.key_id(recipient) == "6d15-2fa9-c011-05bb"


def test_key_id_format():
    kid = agekeys.key_id("age1example")
    parts = kid.split("-")
    assert len(parts) == 4 and all(len(p) == 4 for p in parts)


@pytest.mark.parametrize("text", ["", "AGE-SECRET-KEY-1", "age1abc", "AGE-SECRET-KEY-1QQQQ"])
def test_malformed_identities_are_key_errors(text):
    with pytest.raises(KeyMaterialError):
        agekeys.identity_to_secret(text)


def test_identity_file_parsing_names_the_bad_line():
    good = agekeys.identity_from_secret(agekeys.new_secret())
    assert len(agekeys.load_identities(f"# comment\n\n{good}\n", "f")) == 1
    with pytest.raises(KeyMaterialError, match="f: line 2"):
        agekeys.load_identities(f"{good}\nnonsense\n", "f")
    with pytest.raises(KeyMaterialError, match="no age identity"):
        agekeys.load_identities("# only a comment\n", "f")
