"""Every refusal of the SSHSIG reader, on signatures built field by field (pinned by mutation
testing, docs/testing.md): what is refused and the message a person reads."""

from __future__ import annotations

import base64
import hashlib
import re
import struct

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sealbox.crypto import sshsig
from sealbox.errors import SignatureError

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
MESSAGE = b"the manifest"
NS = sshsig.NS_MANIFEST


def s(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def blob(
    *,
    magic: bytes = b"SSHSIG",
    version: bytes = struct.pack(">I", 1),
    key_type: bytes = b"ssh-ed25519",
    namespace: bytes = NS.encode(),
    hash_alg: bytes = b"sha512",
    sig_type: bytes = b"ssh-ed25519",
    pub: bytes | None = None,
) -> bytes:
    raw_key = KEY.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    signed = (
        b"SSHSIG" + s(NS.encode()) + s(b"") + s(b"sha512") + s(hashlib.sha512(MESSAGE).digest())
    )
    raw_sig = KEY.sign(signed)
    pub_blob = pub if pub is not None else s(key_type) + s(raw_key)
    return (
        magic
        + version
        + s(pub_blob)
        + s(namespace)
        + s(b"")
        + s(hash_alg)
        + s(s(sig_type) + s(raw_sig))
    )


def armor(data: bytes) -> str:
    return f"-----BEGIN SSH SIGNATURE-----\n{base64.b64encode(data).decode()}\n-----END SSH SIGNATURE-----\n"


def refused(message: str) -> pytest.RaisesExc[SignatureError]:
    return pytest.raises(SignatureError, match=f"^{re.escape(message)}$")


def test_the_field_by_field_signature_is_what_sign_makes():
    assert armor(blob()).replace("\n", "") == sshsig.sign(KEY, MESSAGE, NS).replace("\n", "")
    assert sshsig.same_key(sshsig.verify(armor(blob()), MESSAGE, NS), KEY.public_key())


def test_both_armor_lines_are_needed():
    text = armor(blob())
    missing = "not an SSH signature (missing BEGIN/END SSH SIGNATURE lines)"
    with refused(missing):
        sshsig.verify(text.replace("-----END SSH SIGNATURE-----", ""), MESSAGE, NS)
    with refused(missing):
        sshsig.verify(text.replace("-----BEGIN SSH SIGNATURE-----", ""), MESSAGE, NS)


def test_characters_outside_base64_are_refused_not_skipped():
    text = sshsig.sign(KEY, MESSAGE, NS)
    lines = text.splitlines()
    lines[1] = lines[1][:10] + "*" + lines[1][10:]  # the rest still decodes if '*' is dropped
    with refused("malformed SSH signature (bad base64)"):
        sshsig.verify("\n".join(lines), MESSAGE, NS)


def test_a_truncated_signature_is_named():
    with refused("malformed SSH signature (truncated)"):
        sshsig.verify(armor(blob()[:40]), MESSAGE, NS)
    # a length field of 2**32 - 1 is a length, not -1
    huge = blob().replace(s(NS.encode()), struct.pack(">I", 0xFFFFFFFF) + NS.encode(), 1)
    with refused("malformed SSH signature (truncated)"):
        sshsig.verify(armor(huge), MESSAGE, NS)


def test_only_sshsig_version_1_is_read():
    version_one = "not an SSHSIG version 1 signature"
    with refused(version_one):
        sshsig.verify(armor(blob(version=struct.pack(">I", 2))), MESSAGE, NS)
    with refused(version_one):
        sshsig.verify(armor(blob(magic=b"SSHSIH")), MESSAGE, NS)


def test_a_namespace_that_is_not_text_is_still_named():
    with refused("signature made for 'sealbox-\ufffd', expected 'sealbox-manifest'"):
        sshsig.verify(armor(blob(namespace=b"sealbox-\xff")), MESSAGE, NS)


def test_other_algorithms_are_refused_by_name():
    with refused("unsupported signature hash b'sha256'"):
        sshsig.verify(armor(blob(hash_alg=b"sha256")), MESSAGE, NS)
    with refused("only ssh-ed25519 signing keys are supported"):
        sshsig.verify(armor(blob(key_type=b"ssh-rsa")), MESSAGE, NS)
    with refused("signature type is not ssh-ed25519"):
        sshsig.verify(armor(blob(sig_type=b"rsa-sha2-512")), MESSAGE, NS)


def test_modified_data_is_named():
    with refused("signature does not match: the data was modified"):
        sshsig.verify(armor(blob()), MESSAGE + b".", NS)


def test_public_key_lines_and_their_refusals():
    line = sshsig.public_key_line(KEY.public_key())
    assert re.fullmatch(r"ssh-ed25519 [A-Za-z0-9+/]+=*", line)
    assert sshsig.public_key_line(KEY.public_key(), "appliance") == f"{line} appliance"
    long = "x" * 100
    with refused(f"not an OpenSSH public key: {long[:60]!r}"):
        sshsig.parse_public_key_line(long)
    ecdsa = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    with refused("only ssh-ed25519 signer keys are supported"):
        sshsig.parse_public_key_line(ecdsa)


def test_the_reader_never_hands_out_fewer_bytes_than_asked():
    """Each field is read whole or refused as truncated (a short slice must never pass on)."""
    reader = sshsig._Reader(b"abcde")
    assert reader.take(2) == b"ab"
    with refused("malformed SSH signature (truncated)"):
        reader.take(4)
    assert reader.take(3) == b"cde", "exactly what is left is fine"
    with refused("malformed SSH signature (truncated)"):
        reader.take(1)
    with refused("malformed SSH signature (truncated)"):
        sshsig._Reader(b"\x00\x00\x00\x09abc").string()
