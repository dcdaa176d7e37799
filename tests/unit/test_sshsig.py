import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from sealbox.crypto import sshsig
from sealbox.errors import SignatureError

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


def test_sign_verify_roundtrip():
    armored = sshsig.sign(KEY, b"message", sshsig.NS_FILE)
    assert armored.startswith("-----BEGIN SSH SIGNATURE-----\n")
    assert sshsig.same_key(sshsig.verify(armored, b"message", sshsig.NS_FILE), KEY.public_key())


VECTOR = """-----BEGIN SSH SIGNATURE-----
U1NIU0lHAAAAAQAAADMAAAALc3NoLWVkMjU1MTkAAAAgA6EHv/POEL4dcN0Y50vAmWfk1j
CbpQ1fHdyGZBJVMbgAAAAPc2VhbGJveC1zZWNyZXRzAAAAAAAAAAZzaGE1MTIAAABTAAAA
C3NzaC1lZDI1NTE5AAAAQM1ooJ27kkIRSEybKqvnUCj9NMwOzPJpgUHeMWEaX9cxKxbggy
pYnBEDuHXxxPxDYuskx9M+uFs8T9FNOZotZgE=
-----END SSH SIGNATURE-----
"""


def test_signature_test_vector():
    # Ed25519 is deterministic: docs/design/format.md ("Signatures") lists this vector.
    assert sshsig.sign(KEY, b"sealbox", sshsig.NS_FILE) == VECTOR
    assert (
        sshsig.fingerprint(KEY.public_key()) == "SHA256:lbmsoA0yIEcEiVDRnMWuzm+nV+3ZEEpVIURqFoeSspg"
    )


def test_modified_message_wrong_namespace_and_garbage_are_refused():
    armored = sshsig.sign(KEY, b"message", sshsig.NS_FILE)
    with pytest.raises(SignatureError, match="modified"):
        sshsig.verify(armored, b"messagE", sshsig.NS_FILE)
    with pytest.raises(SignatureError, match="expected 'sealbox-manifest'"):
        sshsig.verify(armored, b"message", sshsig.NS_MANIFEST)
    with pytest.raises(SignatureError):
        sshsig.verify("garbage", b"message", sshsig.NS_FILE)


def test_public_key_line_roundtrip():
    line = sshsig.public_key_line(KEY.public_key(), "comment")
    assert line.startswith("ssh-ed25519 ") and line.endswith(" comment")
    assert sshsig.same_key(sshsig.parse_public_key_line(line), KEY.public_key())
    with pytest.raises(SignatureError):
        sshsig.parse_public_key_line("ssh-rsa AAAA")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_parser_never_crashes_on_mangled_signatures(blob):
    import base64

    armored = (
        "-----BEGIN SSH SIGNATURE-----\n"
        + base64.b64encode(blob).decode()
        + "\n-----END SSH SIGNATURE-----"
    )
    with pytest.raises(SignatureError):
        sshsig.verify(armored, b"m", sshsig.NS_FILE)


def _envelope(key_blob: bytes, sig_blob: bytes, namespace: str = sshsig.NS_FILE) -> str:
    import base64
    import struct

    def string(b: bytes) -> bytes:
        return struct.pack(">I", len(b)) + b

    blob = (
        b"SSHSIG"
        + struct.pack(">I", 1)
        + string(string(b"ssh-ed25519") + string(key_blob))
        + string(namespace.encode())
        + string(b"")
        + string(b"sha512")
        + string(string(b"ssh-ed25519") + string(sig_blob))
    )
    return f"-----BEGIN SSH SIGNATURE-----\n{base64.b64encode(blob).decode()}\n-----END SSH SIGNATURE-----\n"


@pytest.mark.parametrize(
    "key_len, sig_len, reason",
    [(31, 64, "31-byte Ed25519 key"), (33, 64, "33-byte"), (32, 63, "63-byte Ed25519 signature")],
)
def test_wrong_length_key_or_signature_is_a_signature_error(key_len, sig_len, reason):
    """A .sig naming a 31-byte key used to raise a bare ValueError: an internal error (exit 70)."""
    with pytest.raises(SignatureError, match=reason):
        sshsig.verify(_envelope(bytes(key_len), bytes(sig_len)), b"m", sshsig.NS_FILE)
