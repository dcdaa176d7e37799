"""Seal a secrets document into its three files, and verify them (``docs/design/format.md``).

A backup named ``secrets-<appliance>-<UTC time>.age`` is three objects:

- ``NAME`` - the document, age-encrypted (X25519) to the master key and any extra recipients.
  Plain age v1: ``age -d -i identity.txt NAME`` opens it.
- ``NAME.sig`` - OpenSSH signature (SSHSIG, namespace ``sealbox-secrets``) of ``NAME``'s bytes by
  the appliance key: ``ssh-keygen -Y verify`` checks it.
- ``NAME.manifest.json`` - what can be known without a key: appliance, time, size, SHA-256 of
  ``NAME``, the key ids and recipients it was made for, counts per type, the signer's public key;
  signed itself (namespace ``sealbox-manifest``) in its ``signature`` field.

A fourth, ``NAME.changes.json`` (item ids and change times, :mod:`sealbox.breakglass.changes`),
says what changed since a system snapshot without a key; opening a backup does not need it.
"""

from __future__ import annotations

import hashlib
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sealbox.breakglass.document import KeyRecord
from sealbox.crypto import sshsig
from sealbox.crypto.trust import Endorsement, Trust
from sealbox.errors import CorruptFileError, SignatureError

__all__ = [
    "MANIFEST_FORMAT",
    "Sealed",
    "Verified",
    "age_recipient_count",
    "backup_name",
    "parse_backup_name",
    "seal",
    "verify",
]

MANIFEST_FORMAT = "sealbox-secrets-manifest"
MANIFEST_VERSION = 1
AGE_MAGIC = b"age-encryption.org/v1\n"
_NAME = re.compile(
    r"^secrets-(?P<appliance>[A-Za-z0-9][A-Za-z0-9._-]*)-(?P<time>\d{8}T\d{6}Z)(?:-(?P<seq>\d+))?\.age$"
)


def backup_name(appliance: str, stamp: str, seq: int = 0) -> str:
    """``secrets-pam-01-20261126T061733Z.age`` (``-N`` added when a second one shares the second)."""
    return f"secrets-{appliance}-{stamp}" + (f"-{seq}" if seq else "") + ".age"


def parse_backup_name(name: str) -> tuple[str, str, int] | None:
    """(appliance, time stamp, sequence) of a backup file name, or None if it is not one."""
    match = _NAME.match(name.rsplit("/", 1)[-1])
    if not match:
        return None
    return match["appliance"], match["time"], int(match["seq"] or 0)


def _canonical(manifest: dict[str, Any]) -> bytes:
    body = {k: v for k, v in manifest.items() if k != "signature"}
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True)
class Sealed:
    ciphertext: bytes | bytearray
    signature: str
    manifest: bytes


def _digests(data: bytes | bytearray, signer: Ed25519PrivateKey) -> tuple[str, str]:
    """(SHA-256 hex, file signature): two passes over a large buffer, run side by side
    (hashlib releases the GIL on large inputs)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        sha = pool.submit(lambda: hashlib.sha256(data).hexdigest())
        signature = sshsig.sign(signer, data, sshsig.NS_FILE)
        return sha.result(), signature


def seal(
    ciphertext: bytes | bytearray,
    *,
    name: str,
    appliance: str,
    created: str,
    keys: list[KeyRecord],
    counts: dict[str, int],
    signer: Ed25519PrivateKey,
    sealbox_version: str,
    endorsements: list[Endorsement] | None = None,
) -> Sealed:
    """Sign an age ciphertext and build its manifest (with the chain of endorsements that leads
    from older signing keys to ``signer``, so sheets that pinned an older key still verify)."""
    sha256, file_signature = _digests(ciphertext, signer)
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "file": name,
        "appliance": appliance,
        "created": created,
        "size": len(ciphertext),
        "sha256": sha256,
        "keys": keys,
        "counts": counts,
        "total": sum(counts.values()),
        "signer": sshsig.public_key_line(signer.public_key()),
        "sealbox_version": sealbox_version,
    }
    if endorsements:
        manifest["endorsements"] = [e.to_dict() for e in endorsements]
    manifest["signature"] = sshsig.sign(signer, _canonical(manifest), sshsig.NS_MANIFEST)
    return Sealed(
        ciphertext=ciphertext,
        signature=file_signature,
        manifest=orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n",
    )


def age_recipient_count(ciphertext: bytes) -> int:
    """Number of X25519 recipient stanzas in an age header; CorruptFileError if not age v1."""
    if not ciphertext.startswith(AGE_MAGIC):
        raise CorruptFileError("not an age-encrypted file (bad header)")
    end = ciphertext.find(b"\n---", 0, 1 << 20)
    if end < 0:
        raise CorruptFileError("age header is truncated")
    return sum(1 for line in ciphertext[:end].split(b"\n") if line.startswith(b"-> X25519 "))


@dataclass(frozen=True)
class Verified:
    signer: Ed25519PublicKey
    manifest: dict[str, Any] | None
    warnings: list[str]
    pinned: bool = False  # the signer is one the reader pinned (else only "a valid signature")


def parse_manifest(data: bytes) -> dict[str, Any]:
    try:
        manifest: Any = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CorruptFileError("manifest is not valid JSON") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise CorruptFileError("not a Sealbox secrets manifest")
    return manifest


def _chain(manifest_bytes: bytes | None) -> list[Endorsement]:
    """Endorsements a manifest carries (read before its signature is checked: each link is
    verified on its own by :meth:`Trust.following`)."""
    if manifest_bytes is None:
        return []
    try:
        manifest = parse_manifest(manifest_bytes)
    except CorruptFileError:
        return []
    return Endorsement.parse_list(manifest.get("endorsements"))


def verify(
    ciphertext: bytes,
    signature: str | None,
    manifest_bytes: bytes | None,
    trust: Trust | None = None,
) -> Verified:
    """Check the file signature, the manifest signature and digest, and the age header.

    With ``trust``, the signer must be one it pins (possibly through the manifest's chain of
    endorsements), or SignatureError; unless the trust accepts unverified sources, in which case
    ``pinned`` is False. Without ``trust`` any valid signature passes (``pinned`` False).
    Raises SignatureError (missing, invalid, unpinned signer) or CorruptFileError (truncated,
    or not matching its manifest).
    """
    warnings: list[str] = []
    age_recipient_count(ciphertext)
    if signature is None:
        raise SignatureError("the signature file (.sig) is missing")
    signer = sshsig.verify(signature, ciphertext, sshsig.NS_FILE)
    pinned = False
    if trust is not None:
        pinned = trust.following(_chain(manifest_bytes)).judge(signer, "the file")
    manifest = None
    if manifest_bytes is None:
        warnings.append(
            "manifest file is missing: key ids and counts cannot be shown before opening"
        )
    else:
        manifest = parse_manifest(manifest_bytes)
        manifest_signer = sshsig.verify(
            str(manifest.get("signature", "")), _canonical(manifest), sshsig.NS_MANIFEST
        )
        if not sshsig.same_key(manifest_signer, signer):
            raise SignatureError("the manifest and the file were signed by different keys")
        if manifest.get("size") != len(ciphertext):
            raise CorruptFileError(
                f"file is {len(ciphertext)} bytes, its manifest says {manifest.get('size')} (truncated?)"
            )
        if manifest.get("sha256") != hashlib.sha256(ciphertext).hexdigest():
            raise CorruptFileError("file does not match the SHA-256 in its manifest")
        if age_recipient_count(ciphertext) != len(manifest.get("keys") or []):
            raise CorruptFileError("the age header's recipients do not match the manifest")
    return Verified(signer=signer, manifest=manifest, warnings=warnings, pinned=pinned)
