"""Sealing and verifying a secrets backup: every tampering is caught and named."""

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sealbox.breakglass import document, package
from sealbox.crypto import agekeys
from sealbox.crypto.trust import Trust
from sealbox.errors import CorruptFileError, SignatureError
from sealbox.items import Item

SIGNER = Ed25519PrivateKey.generate()
IDENTITY = agekeys.identity_from_secret(agekeys.new_secret())
RECIPIENT = agekeys.recipient_of(IDENTITY)
KEYS = [{"id": agekeys.key_id(RECIPIENT), "recipient": RECIPIENT, "role": "master"}]


def _sealed() -> package.Sealed:
    items = [Item(id="1", type="credential", name="db", secret={"password": "hunter2"}, host="db1")]
    plaintext = document.build(
        items, appliance="a", created="2026-01-01T00:00:00Z", keys=KEYS, sealbox_version="t"
    )
    ciphertext = agekeys.encrypt(plaintext, [RECIPIENT])
    return package.seal(
        ciphertext,
        name="secrets-a-20260101T000000Z.age",
        appliance="a",
        created="2026-01-01T00:00:00Z",
        keys=KEYS,
        counts=document.counts_of(items),
        signer=SIGNER,
        sealbox_version="t",
    )


def test_sealed_backup_verifies_and_decrypts():
    sealed = _sealed()
    verified = package.verify(
        sealed.ciphertext, sealed.signature, sealed.manifest, Trust.of([SIGNER.public_key()], "t")
    )
    assert verified.pinned
    assert verified.manifest is not None and verified.manifest["total"] == 1
    plaintext = agekeys.decrypt(sealed.ciphertext, agekeys.load_identities(IDENTITY, "t"))
    doc = document.parse(plaintext)
    assert doc.find("1")["secret"] == {"password": "hunter2"}


def test_manifest_holds_no_secret():
    assert b"hunter2" not in _sealed().manifest


@pytest.mark.parametrize("position", [0, 30, 200, -1])
def test_any_flipped_bit_is_detected(position):
    sealed = _sealed()
    data = bytearray(sealed.ciphertext)
    data[position] ^= 0x01
    with pytest.raises((SignatureError, CorruptFileError)):
        package.verify(bytes(data), sealed.signature, sealed.manifest)


def test_truncated_file_is_detected():
    sealed = _sealed()
    with pytest.raises((SignatureError, CorruptFileError)):
        package.verify(sealed.ciphertext[:-10], sealed.signature, sealed.manifest)


def test_missing_signature_and_foreign_signer():
    sealed = _sealed()
    with pytest.raises(SignatureError, match="missing"):
        package.verify(sealed.ciphertext, None, sealed.manifest)
    with pytest.raises(SignatureError, match="not by a key pinned by the sheets"):
        package.verify(
            sealed.ciphertext,
            sealed.signature,
            sealed.manifest,
            Trust.of([Ed25519PrivateKey.generate().public_key()], "the sheets"),
        )


def test_edited_manifest_is_detected():
    sealed = _sealed()
    manifest = orjson.loads(sealed.manifest)
    manifest["keys"][0]["id"] = "0000-0000-0000-0000"
    with pytest.raises(SignatureError):
        package.verify(sealed.ciphertext, sealed.signature, orjson.dumps(manifest))


def test_not_an_age_file():
    with pytest.raises(CorruptFileError, match="not an age"):
        package.age_recipient_count(b"hello")


def test_backup_names():
    name = package.backup_name("pam-01", "20261126T061733Z")
    assert name == "secrets-pam-01-20261126T061733Z.age"
    assert package.parse_backup_name(name) == ("pam-01", "20261126T061733Z", 0)
    assert package.parse_backup_name("secrets-pam-01-20261126T061733Z-2.age")[2] == 2
    assert package.parse_backup_name("secrets-pam-01-20261126T061733Z.age.sig") is None


def test_document_search_and_version_check():
    items = [
        Item(
            id="1",
            type="credential",
            name="Oracle prod",
            secret={},
            host="db1.corp",
            username="sys",
            tags=["dba"],
        ),
        Item(id="2", type="ssh_key", name="deploy", secret={}, host="web1.corp", username="deploy"),
    ]
    doc = document.parse(
        document.build(items, appliance="a", created="t", keys=[], sealbox_version="t")
    )
    assert [i["id"] for i in doc.search("ORACLE")] == ["1"]
    assert [i["id"] for i in doc.search("corp")] == ["1", "2"]
    assert [i["id"] for i in doc.search("dba", "tag")] == ["1"]
    assert doc.search("dba", "name") == []
    with pytest.raises(CorruptFileError, match="version 99"):
        document.parse(orjson.dumps({"format": "sealbox-secrets", "version": 99, "items": []}))
    with pytest.raises(CorruptFileError):
        document.parse(b"{not json")


def test_document_vector():
    """docs/design/format.md, section 4: the exact bytes of a one-item document."""
    import hashlib

    from sealbox.items import Version

    items = [
        Item(
            id="1",
            type="credential",
            name="db1 root",
            secret={"password": "hunter2"},
            host="db1",
            username="root",
            tags=["dba"],
            updated="2026-01-01T00:00:00Z",
            source="vault",
            history=[Version(time="2025-12-01T00:00:00Z", secret={"password": "hunter1"})],
        )
    ]
    keys = [
        {
            "id": "6d15-2fa9-c011-05bb",
            "recipient": "age13aqvttdk3ujkyjh9kg2w5an6dmy5mq5a84a4uxk3hfhnugfc9p0sy5p2wh",
            "role": "master",
        }
    ]
    data = document.build(
        items,
        appliance="pam-01",
        created="2026-01-02T00:00:00Z",
        keys=keys,
        sealbox_version="0.1.0",
    )
    assert (
        hashlib.sha256(data).hexdigest()
        == "0635e2292fbb6a632ce556b7f32dcf8c65415ba8ce953445b8c1531749ac975e"
    )
    doc = document.parse(data)
    assert doc.find("1")["history"][0]["secret"] == {"password": "hunter1"}


def test_reindented_and_empty_documents_still_open():
    items = [Item(id=str(n), type="secret", name=f"n{n}", secret={"t": "x"}) for n in range(3)]
    data = document.build(items, appliance="a", created="t", keys=[], sealbox_version="t")
    pretty = orjson.dumps(orjson.loads(data), option=orjson.OPT_INDENT_2)
    doc = document.parse(pretty)
    assert len(doc) == 3 and doc.find("2")["name"] == "n2"
    empty = document.parse(
        document.build([], appliance="a", created="t", keys=[], sealbox_version="t")
    )
    assert len(empty) == 0 and empty.counts["secret"] == 0


def test_document_with_a_missing_item_is_refused():
    items = [Item(id=str(n), type="secret", name=f"n{n}", secret={}) for n in range(3)]
    lines = document.build(items, appliance="a", created="t", keys=[], sealbox_version="t").split(
        b"\n"
    )
    del lines[2]
    with pytest.raises(CorruptFileError):
        document.parse(b"\n".join(lines))


def test_close_wipes_the_plaintext():
    items = [Item(id="1", type="secret", name="n", secret={"t": "topsecret"})]
    buffer = bytearray(
        document.build(items, appliance="a", created="t", keys=[], sealbox_version="t")
    )
    doc = document.parse(buffer)
    assert b"topsecret" in buffer
    doc.close()
    assert buffer == bytearray(len(buffer))
