"""Read a secrets backup and its side files from disk, verify, and decrypt it in memory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sealbox.breakglass import document, package
from sealbox.crypto import agekeys, sshsig
from sealbox.errors import (
    CorruptFileError,
    NotFoundError,
    SealboxError,
    SignatureError,
    WrongKeyError,
)
from sealbox.keymaterial import Unlocked

__all__ = ["BackupFiles", "Opened", "load_files", "open_backup", "parse_signer", "verify_files"]


@dataclass
class BackupFiles:
    path: Path
    ciphertext: bytes
    signature: str | None
    manifest: bytes | None


def _read_optional(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CorruptFileError(f"cannot read {path}: {exc.strerror}") from exc


def load_files(path: Path) -> BackupFiles:
    try:
        ciphertext = path.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"no such backup file: {path}") from None
    except IsADirectoryError:
        raise NotFoundError(f"{path} is a directory, not a backup file") from None
    except OSError as exc:
        raise CorruptFileError(f"cannot read {path}: {exc.strerror}") from exc
    sig = _read_optional(path.with_name(path.name + ".sig"))
    return BackupFiles(
        path=path,
        ciphertext=ciphertext,
        signature=sig.decode("utf-8", errors="replace") if sig is not None else None,
        manifest=_read_optional(path.with_name(path.name + ".manifest.json")),
    )


def parse_signer(value: str) -> Ed25519PublicKey:
    """``--signer``: an ``ssh-ed25519 AAAA...`` line, or a file holding one."""
    if not value.strip().startswith("ssh-"):
        try:
            value = Path(value).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SignatureError(f"--signer: cannot read {value}: {exc.strerror}") from exc
    return sshsig.parse_public_key_line(value)


def verify_files(files: BackupFiles, expected_signer: Ed25519PublicKey | None) -> package.Verified:
    try:
        return package.verify(files.ciphertext, files.signature, files.manifest, expected_signer)
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
    expected_signer: Ed25519PublicKey | None,
    ignore_signature: bool,
) -> Opened:
    """Verify (unless told not to), check the key against the manifest, decrypt, parse."""
    import pyrage

    warnings: list[str] = []
    verified: package.Verified | None = None
    manifest = None
    signer = expected_signer or unlocked.signer
    try:
        verified = verify_files(files, signer)
        warnings += verified.warnings
        manifest = verified.manifest
    except SignatureError as exc:
        if not ignore_signature:
            raise SignatureError(f"{exc} (refusing to open; --ignore-signature overrides)") from exc
        warnings.append(f"signature NOT verified: {exc}")
        manifest = _unsigned_manifest(files, warnings)
    if manifest:
        made_for = {k.get("recipient") for k in manifest.get("keys", [])}
        if not made_for & set(unlocked.recipients):
            ids = ", ".join(k.get("id", "?") for k in manifest.get("keys", []))
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
