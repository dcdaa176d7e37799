"""Read a secrets backup and its side files from disk, verify, and decrypt it in memory."""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sealbox.breakglass import document, package
from sealbox.crypto import agekeys, sshsig
from sealbox.crypto.trust import Trust
from sealbox.errors import (
    CorruptFileError,
    NotFoundError,
    SealboxError,
    SignatureError,
    WrongKeyError,
)
from sealbox.keys.material import Unlocked

__all__ = [
    "BackupFiles",
    "Opened",
    "load_files",
    "open_backup",
    "parse_signer",
    "parse_signers",
    "verify_files",
]


@dataclass
class BackupFiles:
    path: Path
    ciphertext: bytes
    signature: str | None
    manifest: bytes | None


# The largest of each file a custodian's opener reads: a backup of a million items is far below.
MAX_BACKUP = 2 << 30
MAX_SIGNATURE = 64 << 10
MAX_MANIFEST = 4 << 20


def _read_limited(path: Path, limit: int) -> bytes:
    """A regular file, at most ``limit`` bytes (a FIFO, a device or a huge file is refused)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory")
        if not stat.S_ISREG(mode):
            raise CorruptFileError(f"{path} is not a regular file")
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise CorruptFileError(f"{path} is larger than {limit:,} bytes: not a Sealbox file")
    return data


def _read_optional(path: Path, limit: int) -> bytes | None:
    try:
        return _read_limited(path, limit)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CorruptFileError(f"cannot read {path}: {exc.strerror}") from exc


def load_files(path: Path) -> BackupFiles:
    try:
        ciphertext = _read_limited(path, MAX_BACKUP)
    except FileNotFoundError:
        raise NotFoundError(f"no such backup file: {path}") from None
    except IsADirectoryError:
        raise NotFoundError(f"{path} is a directory, not a backup file") from None
    except OSError as exc:
        raise CorruptFileError(f"cannot read {path}: {exc.strerror}") from exc
    sig = _read_optional(path.with_name(path.name + ".sig"), MAX_SIGNATURE)
    return BackupFiles(
        path=path,
        ciphertext=ciphertext,
        signature=sig.decode("utf-8", errors="replace") if sig is not None else None,
        manifest=_read_optional(path.with_name(path.name + ".manifest.json"), MAX_MANIFEST),
    )


def parse_signers(values: list[str] | tuple[str, ...]) -> list[Ed25519PublicKey]:
    return [parse_signer(v) for v in values]


def parse_signer(value: str) -> Ed25519PublicKey:
    """``--signer``: an ``ssh-ed25519 AAAA...`` line, or a file holding one."""
    if not value.strip().startswith("ssh-"):
        try:
            value = Path(value).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SignatureError(f"--signer: cannot read {value}: {exc.strerror}") from exc
    return sshsig.parse_public_key_line(value)


def verify_files(files: BackupFiles, trust: Trust | None) -> package.Verified:
    try:
        return package.verify(files.ciphertext, files.signature, files.manifest, trust)
    except SealboxError as exc:
        raise type(exc)(f"{files.path.name}: {exc}") from exc


def _unsigned_manifest(files: BackupFiles, warnings: list[str]) -> dict[str, Any] | None:
    """The manifest, unauthenticated, to name keys and spot damage when the signature is ignored."""
    if files.manifest is None:
        return None
    try:
        manifest = package.parse_manifest(files.manifest)
    except CorruptFileError as exc:
        warnings.append(f"manifest ignored: {exc}")
        return None
    if manifest.get("size") != len(files.ciphertext):
        warnings.append(
            f"file is {len(files.ciphertext)} bytes, its manifest says {manifest.get('size')} (truncated?)"
        )
    return manifest


@dataclass
class Opened:
    document: document.Document
    verified: package.Verified | None
    warnings: list[str]


def open_backup(
    files: BackupFiles,
    unlocked: Unlocked,
    *,
    trust: Trust,
    ignore_signature: bool,
) -> Opened:
    """Verify against the pinned signers (``trust``), check the key against the manifest,
    decrypt, parse. A missing or bad signature, or a signer nobody pinned, refuses to open
    unless ``ignore_signature``; then the warnings say the origin is unverified."""
    import pyrage

    warnings: list[str] = []
    verified: package.Verified | None = None
    manifest = None
    try:
        verified = verify_files(files, trust)
        warnings += verified.warnings
        manifest = verified.manifest
        if not verified.pinned:
            warnings.append(
                f"signature valid, but by {sshsig.fingerprint(verified.signer)}, which nothing"
                " pinned: the origin of this file is UNVERIFIED"
            )
    except SignatureError as exc:
        if not ignore_signature:
            raise SignatureError(f"{exc} (refusing to open; --ignore-signature overrides)") from exc
        warnings.append(f"signature NOT verified: {exc}")
        manifest = _unsigned_manifest(files, warnings)
    if manifest:
        listed = manifest.get("keys")
        keys = [k for k in listed if isinstance(k, dict)] if isinstance(listed, list) else []
        made_for = {k.get("recipient") for k in keys}
        if not made_for & set(unlocked.recipients):
            ids = ", ".join(str(k.get("id", "?")) for k in keys)
            hint = " (wrong passphrase or shares of another key?)" if unlocked.from_shares else ""
            raise WrongKeyError(
                f"{files.path.name} was made for key {ids}; the key given is"
                f" {', '.join(unlocked.key_ids)}{hint}"
            )
    try:
        plaintext = agekeys.decrypt(files.ciphertext, unlocked.identities)
        files.ciphertext = b""  # not needed any more: halve the peak memory of a large backup
    except pyrage.DecryptError as exc:
        if manifest:
            raise CorruptFileError(
                f"{files.path.name}: decryption failed: the file is damaged or truncated"
            ) from exc
        raise WrongKeyError(
            f"{files.path.name}: the key given does not open this file ({exc})"
        ) from exc
    try:
        doc = document.parse(plaintext)  # the document now owns the buffer and wipes it on close
    except BaseException:
        agekeys.wipe(plaintext)
        raise
    return Opened(document=doc, verified=verified, warnings=warnings)
