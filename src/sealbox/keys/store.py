"""The appliance keystore, under ``state_dir/keystore``: public key parts and the signing key.

It holds, by design, nothing that can decrypt a backup:

- ``keys.json``: every master key this appliance has used (recipient, key id, creation date,
  threshold and share count, last successful custodian drill), the newest marked current. Old
  keys stay listed so ``keys list`` can tell which retained backups need which key.
- ``signing_key`` (mode 0600): the appliance's Ed25519 key, OpenSSH format, that signs every
  secrets backup, repository snapshot and recordings batch; ``signing_key.pub`` its public half.
- ``signers.json``: earlier signing keys (public halves) and the endorsements by which each
  vouched for its successor (``sealbox keys rotate-signer``), so that backups signed by an older
  key keep verifying and readers that pinned an older key follow the chain to the newer one.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sealbox.crypto import sshsig
from sealbox.crypto.sshsig import public_key_line
from sealbox.crypto.trust import Endorsement, Trust, endorse
from sealbox.errors import ConfigError, KeyNotSetError, SignatureError

__all__ = ["KeyRecord", "Keystore", "utc_now"]


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class KeyRecord:
    id: str
    recipient: str
    created: str
    threshold: int | None = None
    shares: int | None = None
    passphrase: bool = False
    current: bool = False
    last_drill: str | None = None


def _atomic_write(path: Path, data: bytes, mode: int = 0o644, exclusive: bool = False) -> bool:
    """Write ``data`` under ``path`` whole or not at all; with ``exclusive``, only if nothing is
    there yet (a link, which fails on an existing name): False when another writer was first."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if not exclusive:
        os.replace(tmp, path)
        return True
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)
    return True


def _write_signing_key(path: Path, key: Ed25519PrivateKey, exclusive: bool = False) -> bool:
    """The private key (OpenSSH format, 0600), then its public line beside it (.pub); with
    ``exclusive``, only if no key is there yet (False: another process made one first)."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    if not _atomic_write(path, pem, mode=0o600, exclusive=exclusive):
        return False
    line = public_key_line(key.public_key(), "sealbox") + "\n"
    _atomic_write(path.with_suffix(".pub"), line.encode())
    return True


class Keystore:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "keystore"

    def _ensure_dir(self) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ConfigError(f"cannot create keystore {self.dir}: {exc.strerror}") from exc

    # -- master keys -------------------------------------------------------------------------
    def records(self) -> list[KeyRecord]:
        path = self.dir / "keys.json"
        try:
            raw: Any = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            return []
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ConfigError(f"keystore {path} is unreadable: {exc}") from exc
        return [KeyRecord(**entry) for entry in raw.get("keys", [])]

    def _save(self, records: list[KeyRecord]) -> None:
        self._ensure_dir()
        body = orjson.dumps(
            {"version": 1, "keys": [asdict(r) for r in records]}, option=orjson.OPT_INDENT_2
        )
        _atomic_write(self.dir / "keys.json", body)

    def current(self) -> KeyRecord | None:
        return next((r for r in self.records() if r.current), None)

    def require_current(self) -> KeyRecord:
        record = self.current()
        if record is None:
            raise KeyNotSetError("no master key is set: run `sealbox keys ceremony` first")
        return record

    def add(self, record: KeyRecord) -> None:
        """Store a new master key as current; older keys stay listed, no longer current."""
        records = self.records()
        for r in records:
            r.current = False
        record.current = True
        records.append(record)
        self._save(records)

    def record_drill(self, key_id: str) -> None:
        records = self.records()
        for r in records:
            if r.id == key_id:
                r.last_drill = utc_now()
        self._save(records)

    # -- the appliance signing key -------------------------------------------------------------
    def signing_key(self, create: bool = True) -> Ed25519PrivateKey:
        """The appliance's signing key, created on first use when ``create``."""
        return self._key("signing_key", "appliance signing key", create)

    def drill_key(self) -> Ed25519PrivateKey:
        """A recovery host's key for its drill receipts (created on its first drill). Apart
        from the appliance signing key on purpose: the keystore's signer is trusted by readers
        on this machine, and a drill host must never vouch for snapshots."""
        return self._key("drill_signing_key", "drill signing key", True)

    def _key(self, name: str, what: str, create: bool) -> Ed25519PrivateKey:
        path = self.dir / name
        try:
            key = serialization.load_ssh_private_key(path.read_bytes(), password=None)
        except FileNotFoundError:
            if not create:
                raise KeyNotSetError(f"no {what} in {self.dir}") from None
            self._ensure_dir()
            key = Ed25519PrivateKey.generate()
            # Exclusive: jobs that start together on a new appliance (the daemon's catch-up)
            # must end up with one key, not each sign with its own while the last one written
            # wins the file.
            if _write_signing_key(path, key, exclusive=True):
                return key
            return self._key(name, what, create=False)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{what} {path} is unreadable: {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"{what} {path} is not an Ed25519 key")
        return key

    def signer_public(self) -> Ed25519PublicKey:
        return self.signing_key().public_key()

    # -- signer history --------------------------------------------------------------------------
    def _signer_record(self) -> dict[str, Any]:
        path = self.dir / "signers.json"
        try:
            raw: Any = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            return {"version": 1, "retired": [], "endorsements": []}
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ConfigError(f"keystore {path} is unreadable: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"keystore {path} is not a signer record")
        return raw

    def endorsements(self) -> list[Endorsement]:
        return Endorsement.parse_list(self._signer_record().get("endorsements"))

    def signer_lines(self) -> list[str]:
        """Every signing key this appliance has used, newest (current) first; empty if none."""
        lines: list[str] = []
        public = self.dir / "signing_key.pub"
        try:  # the public half, so that a reader need not be able to read the private key
            lines.append(" ".join(public.read_text(encoding="utf-8").split()[:2]))
        except FileNotFoundError:
            if (self.dir / "signing_key").exists():
                lines.append(public_key_line(self.signing_key(create=False).public_key()))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"keystore {public} is unreadable: {exc}") from exc
        for entry in reversed(self._signer_record().get("retired", [])):
            line = str(entry.get("key", "")) if isinstance(entry, dict) else ""
            if line and line not in lines:
                lines.append(line)
        return lines

    def trust(self, accept_unverified: bool = False) -> Trust:
        """The signers this appliance vouches for: its key and every key it used before."""
        keys = []
        for line in self.signer_lines():
            try:
                keys.append(sshsig.parse_public_key_line(line))
            except SignatureError as exc:
                raise ConfigError(f"keystore {self.dir / 'signers.json'}: {exc}") from exc
        return Trust.of(keys, "this appliance's keystore", accept_unverified)

    def rotate_signer(self) -> tuple[Ed25519PublicKey, Endorsement]:
        """A new signing key, endorsed by the old one, which is kept (public half) as retired."""
        path = self.dir / "signing_key"
        old = self.signing_key(create=False)
        new = Ed25519PrivateKey.generate()
        link = endorse(old, new.public_key(), utc_now())
        record = self._signer_record()
        record.setdefault("retired", []).append(
            {"key": public_key_line(old.public_key()), "until": link.time}
        )
        record.setdefault("endorsements", []).append(link.to_dict())
        _atomic_write(self.dir / "signers.json", orjson.dumps(record, option=orjson.OPT_INDENT_2))
        _write_signing_key(path, new)
        return new.public_key(), link
