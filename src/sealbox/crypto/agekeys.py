"""age X25519 keys: raw secret bytes <-> age identity strings, recipients and key ids.

The master key is an age X25519 identity. Its 32-byte secret is what SLIP-39 splits into shares,
so we need the raw bytes; pyrage only speaks the Bech32 text form (``AGE-SECRET-KEY-1...``), so the
conversion is done here with the reference Bech32 codec. No cryptography happens in this module.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
from typing import Any

import bech32
import pyrage
from pyrage import x25519

from sealbox.errors import KeyMaterialError

__all__ = [
    "SECRET_LEN",
    "decrypt",
    "encrypt",
    "identity_from_secret",
    "identity_to_secret",
    "key_id",
    "load_identities",
    "new_secret",
    "parse_recipient",
    "recipient_of",
    "wipe",
]

SECRET_LEN = 32
_SECRET_HRP = "age-secret-key-"  # noqa: S105 - the Bech32 prefix, not a secret
_RECIPIENT_HRP = "age"


def new_secret() -> bytearray:
    """A fresh 32-byte X25519 secret from the OS CSPRNG (mutable, so callers can zero it)."""
    return bytearray(os.urandom(SECRET_LEN))


def identity_from_secret(secret: bytes | bytearray) -> str:
    """The age identity string (``AGE-SECRET-KEY-1...``) for a raw 32-byte secret."""
    if len(secret) != SECRET_LEN:
        raise KeyMaterialError(f"a master key secret is {SECRET_LEN} bytes, got {len(secret)}")
    data: list[int] = bech32.convertbits(list(secret), 8, 5, True) or []
    text: str = bech32.bech32_encode(_SECRET_HRP, data)
    return text.upper()


def identity_to_secret(identity: str) -> bytearray:
    """The raw 32-byte secret of an age identity string; raises KeyMaterialError if malformed."""
    hrp, data = bech32.bech32_decode(identity.strip())
    if hrp != _SECRET_HRP or data is None:
        raise KeyMaterialError("not an age X25519 identity (expected AGE-SECRET-KEY-1...)")
    raw = bech32.convertbits(data, 5, 8, False)
    if raw is None or len(raw) != SECRET_LEN:
        raise KeyMaterialError("malformed age identity: wrong length")
    return bytearray(raw)


def recipient_of(identity: str) -> str:
    """The public recipient (``age1...``) of an identity string."""
    try:
        return str(x25519.Identity.from_str(identity.strip()).to_public())
    except Exception as exc:  # pyrage raises its own IdentityError / ValueError
        raise KeyMaterialError("not a valid age X25519 identity") from exc


def parse_recipient(text: str) -> Any:
    """A pyrage recipient object for ``age1...``; raises KeyMaterialError with the bad value."""
    try:
        return x25519.Recipient.from_str(text.strip())
    except Exception as exc:
        raise KeyMaterialError(f"not a valid age X25519 recipient: {text.strip()[:80]!r}") from exc


def key_id(recipient: str) -> str:
    """A short, readable fingerprint of a recipient: 16 hex digits in groups of four.

    SHA-256 of the recipient string, first 8 bytes. It names a key on custodian sheets, manifests
    and in ``keys list``; it is also the key-check value that tells a wrong share set or passphrase
    apart from a right one (a wrong one yields a different, valid-looking key).
    """
    digest = hashlib.sha256(recipient.strip().encode()).hexdigest()[:16]
    return "-".join(digest[i : i + 4] for i in range(0, 16, 4))


def load_identities(text: str, origin: str) -> list[Any]:
    """Parse an age identity file (comments with ``#``, one identity per line).

    Returns pyrage identity objects. ``origin`` names the file in error messages.
    """
    identities = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            identities.append(x25519.Identity.from_str(line))
        except Exception as exc:
            raise KeyMaterialError(
                f"{origin}: line {number} is not an age X25519 identity"
            ) from exc
    if not identities:
        raise KeyMaterialError(f"{origin}: no age identity found (expected AGE-SECRET-KEY-1...)")
    return identities


class _Reader:
    """A read-only file over a buffer, so pyrage streams from it without a copy of the whole."""

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self.view, self.pos = memoryview(data), 0

    def read(self, size: int = -1) -> bytes:
        end = len(self.view) if size is None or size < 0 else min(len(self.view), self.pos + size)
        chunk = bytes(self.view[self.pos : end])
        self.pos = end
        return chunk

    def readable(self) -> bool:
        return True


class _Writer:
    """A write-only file into a preallocated bytearray (grown if needed), so it can be wiped."""

    def __init__(self, capacity: int) -> None:
        self.buffer, self.size = bytearray(capacity), 0

    def write(self, data: bytes) -> int:
        end = self.size + len(data)
        if end > len(self.buffer):
            self.buffer.extend(bytes(end - len(self.buffer)))
        self.buffer[self.size : end] = data
        self.size = end
        return len(data)

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        return None


def encrypt(plaintext: bytes | bytearray | memoryview, recipients: list[str]) -> bytearray:
    """age-encrypt (binary, no armor) to every recipient string."""
    objs = [parse_recipient(r) for r in recipients]
    # age adds a header (~100 bytes per recipient) and 16 bytes per 64 KiB chunk.
    out = _Writer(len(plaintext) + len(plaintext) // 4096 + 200 * len(objs) + 1024)
    pyrage.encrypt_io(_Reader(plaintext), out, objs)
    del out.buffer[out.size :]
    return out.buffer


def decrypt(ciphertext: bytes, identities: list[Any]) -> bytearray:
    """age-decrypt with any of the identities into a mutable buffer the caller can wipe.

    Raises pyrage.DecryptError for the caller to map to a Sealbox error.
    """
    out = _Writer(len(ciphertext))  # the plaintext is never longer than the ciphertext
    try:
        pyrage.decrypt_io(_Reader(ciphertext), out, identities)
    except BaseException as exc:
        wipe(out.buffer)
        if isinstance(
            exc, OSError | ValueError
        ):  # the streaming API reports failures as I/O errors
            raise pyrage.DecryptError(str(exc)) from exc
        raise
    del out.buffer[out.size :]
    return out.buffer


def wipe(buffer: bytearray) -> None:
    """Overwrite a buffer that held plaintext or key material with zeros, in place."""
    if buffer:
        ctypes.memset((ctypes.c_char * len(buffer)).from_buffer(buffer), 0, len(buffer))
