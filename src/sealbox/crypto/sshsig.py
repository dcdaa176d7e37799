"""OpenSSH signatures (the SSHSIG format of ``ssh-keygen -Y sign``) with Ed25519.

We compose Ed25519 from ``cryptography`` with the SSHSIG envelope described in OpenSSH's
``PROTOCOL.sshsig`` so that anyone can check a Sealbox signature with the standard tool:

    ssh-keygen -Y verify -f allowed_signers -I sealbox -n NAMESPACE -s FILE.sig < FILE

Signed blob: ``"SSHSIG" || string(namespace) || string("") || string("sha512") || string(SHA512(m))``.
The namespace binds a signature to its purpose (a manifest signature cannot pass as a file one).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sealbox.errors import SignatureError

__all__ = [
    "NS_FILE",
    "NS_MANIFEST",
    "NS_REPO",
    "NS_SIGNER",
    "NS_SNAPSHOT",
    "fingerprint",
    "parse_public_key_line",
    "public_key_line",
    "same_key",
    "sign",
    "verify",
]

NS_FILE = "sealbox-secrets"
NS_MANIFEST = "sealbox-manifest"
NS_REPO = "sealbox-repo"  # a repository's config (its root of trust)
NS_SNAPSHOT = "sealbox-snapshot"  # a repository snapshot header
NS_SIGNER = "sealbox-signer"  # an old signing key vouching for its successor
_MAGIC = b"SSHSIG"
_VERSION = 1
_HASH = "sha512"
_KEYTYPE = b"ssh-ed25519"
_BEGIN = "-----BEGIN SSH SIGNATURE-----"
_END = "-----END SSH SIGNATURE-----"


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise SignatureError("malformed SSH signature (truncated)")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def string(self) -> bytes:
        (length,) = struct.unpack(">I", self.take(4))
        return self.take(length)


def _pub_blob(public: Ed25519PublicKey) -> bytes:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _string(_KEYTYPE) + _string(raw)


def _signed_data(namespace: str, message: bytes | bytearray) -> bytes:
    return (
        _MAGIC
        + _string(namespace.encode())
        + _string(b"")
        + _string(_HASH.encode())
        + _string(hashlib.sha512(message).digest())
    )


def sign(private: Ed25519PrivateKey, message: bytes | bytearray, namespace: str) -> str:
    """An armored SSHSIG signature of ``message`` under ``namespace``."""
    raw_sig = private.sign(_signed_data(namespace, message))
    blob = (
        _MAGIC
        + struct.pack(">I", _VERSION)
        + _string(_pub_blob(private.public_key()))
        + _string(namespace.encode())
        + _string(b"")
        + _string(_HASH.encode())
        + _string(_string(_KEYTYPE) + _string(raw_sig))
    )
    text = base64.b64encode(blob).decode()
    body = "\n".join(text[i : i + 70] for i in range(0, len(text), 70))
    return f"{_BEGIN}\n{body}\n{_END}\n"


def verify(armored: str, message: bytes | bytearray, namespace: str) -> Ed25519PublicKey:
    """Check an armored SSHSIG signature; return the signer's public key.

    Raises SignatureError when the signature is malformed, made for another namespace, or does
    not match the message. Whether the signer is the expected one is the caller's decision.
    """
    text = armored.strip()
    if not (text.startswith(_BEGIN) and text.endswith(_END)):
        raise SignatureError("not an SSH signature (missing BEGIN/END SSH SIGNATURE lines)")
    try:
        blob = base64.b64decode("".join(text[len(_BEGIN) : -len(_END)].split()), validate=True)
    except ValueError as exc:
        raise SignatureError("malformed SSH signature (bad base64)") from exc
    reader = _Reader(blob)
    if reader.take(6) != _MAGIC or struct.unpack(">I", reader.take(4))[0] != _VERSION:
        raise SignatureError("not an SSHSIG version 1 signature")
    pub_blob = reader.string()
    sig_namespace = reader.string().decode(errors="replace")
    reader.string()  # reserved
    hash_alg = reader.string()
    sig_blob = reader.string()
    if sig_namespace != namespace:
        raise SignatureError(f"signature made for {sig_namespace!r}, expected {namespace!r}")
    if hash_alg != _HASH.encode():
        raise SignatureError(f"unsupported signature hash {hash_alg!r}")
    key_reader = _Reader(pub_blob)
    if key_reader.string() != _KEYTYPE:
        raise SignatureError("only ssh-ed25519 signing keys are supported")
    raw_key = key_reader.string()
    if len(raw_key) != 32:  # from_public_bytes would raise a bare ValueError
        raise SignatureError(f"malformed SSH signature (a {len(raw_key)}-byte Ed25519 key)")
    public = Ed25519PublicKey.from_public_bytes(raw_key)
    sig_reader = _Reader(sig_blob)
    if sig_reader.string() != _KEYTYPE:
        raise SignatureError("signature type is not ssh-ed25519")
    raw_sig = sig_reader.string()
    if len(raw_sig) != 64:
        raise SignatureError(f"malformed SSH signature (a {len(raw_sig)}-byte Ed25519 signature)")
    try:
        public.verify(raw_sig, _signed_data(namespace, message))
    except InvalidSignature as exc:
        raise SignatureError("signature does not match: the data was modified") from exc
    return public


def public_key_line(public: Ed25519PublicKey, comment: str = "") -> str:
    """OpenSSH one-line form: ``ssh-ed25519 AAAA... comment``."""
    line = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return (line.decode() + (" " + comment if comment else "")).strip()


def parse_public_key_line(line: str) -> Ed25519PublicKey:
    """Parse ``ssh-ed25519 AAAA...`` (a trailing comment is allowed)."""
    parts = line.strip().split()
    try:
        key = serialization.load_ssh_public_key(" ".join(parts[:2]).encode())
    except (ValueError, IndexError, UnsupportedAlgorithm) as exc:
        raise SignatureError(f"not an OpenSSH public key: {line.strip()[:60]!r}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError("only ssh-ed25519 signer keys are supported")
    return key


def fingerprint(public: Ed25519PublicKey) -> str:
    """``SHA256:...`` as ``ssh-keygen -l`` prints it."""
    digest = hashlib.sha256(_pub_blob(public)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def same_key(a: Ed25519PublicKey, b: Ed25519PublicKey) -> bool:
    return hmac.compare_digest(_pub_blob(a), _pub_blob(b))
