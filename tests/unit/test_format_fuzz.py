"""Property tests: the format parsers fail only with typed errors, whatever the input."""

from __future__ import annotations

import contextlib

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sealbox.breakglass import document, package
from sealbox.crypto import agekeys
from sealbox.errors import CorruptFileError, SealboxError
from sealbox.items import Item

ITEMS = [
    Item(id=str(n), type="credential", name=f"host{n}", secret={"password": "pw"}) for n in range(4)
]
VALID = document.build(ITEMS, appliance="a", created="t", keys=[], sealbox_version="t")
SIGNER = Ed25519PrivateKey.generate()
RECIPIENT = agekeys.recipient_of(agekeys.identity_from_secret(agekeys.new_secret()))
KEYS = [{"id": agekeys.key_id(RECIPIENT), "recipient": RECIPIENT, "role": "master"}]
CIPHERTEXT = agekeys.encrypt(VALID, [RECIPIENT])
SEALED = package.seal(
    CIPHERTEXT,
    name="secrets-a-20260101T000000Z.age",
    appliance="a",
    created="t",
    keys=KEYS,
    counts=document.counts_of(ITEMS),
    signer=SIGNER,
    sealbox_version="t",
)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=600))
def test_document_parser_on_random_bytes(data):
    with contextlib.suppress(CorruptFileError):
        document.parse(data)


@FUZZ
@given(st.integers(0, len(VALID) - 1), st.integers(0, 255))
def test_document_parser_on_corrupted_documents(position, value):
    data = bytearray(VALID)
    data[position] = value
    try:
        doc = document.parse(bytes(data))
    except CorruptFileError:
        return
    for item in doc.iter_items():  # whatever parsed must be usable
        assert isinstance(item, dict)


@FUZZ
@given(st.integers(0, len(VALID)))
def test_document_parser_on_truncated_documents(length):
    """A truncated document is refused, never parsed as a shorter valid one (only trailing
    whitespace may go)."""
    whole = bytes(VALID[:length]).rstrip() == bytes(VALID).rstrip()
    try:
        doc = document.parse(VALID[:length])
    except CorruptFileError:
        assert not whole, "the whole document was refused"
        return
    assert whole, f"a document cut at {length} of {len(VALID)} bytes parsed"
    assert len(doc) == len(ITEMS)


@FUZZ
@given(st.binary(max_size=400), st.booleans())
def test_verify_on_random_manifests(manifest, with_signature):
    with pytest.raises(SealboxError):
        package.verify(bytes(CIPHERTEXT), SEALED.signature if with_signature else None, manifest)


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(["size", "sha256", "keys", "signature", "format"]),
        st.one_of(
            st.none(),
            st.integers(-(2**62), 2**62),
            st.text(max_size=20),
            st.lists(st.integers(0, 9), max_size=2),
        ),
    )
)
def test_verify_on_edited_manifests(changes):
    manifest = orjson.loads(SEALED.manifest)
    manifest.update(changes)
    try:
        package.verify(bytes(CIPHERTEXT), SEALED.signature, orjson.dumps(manifest))
    except SealboxError:
        return
    assert all(orjson.loads(SEALED.manifest).get(k) == v for k, v in changes.items())


@FUZZ
@given(st.binary(max_size=300))
def test_age_header_parser(data):
    with contextlib.suppress(CorruptFileError):
        package.age_recipient_count(data)
