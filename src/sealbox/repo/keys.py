"""Repository keys: the writer secrets (id key, index key, chunker seed) and per-run data keys.

- The writer secrets are sealed with age to the repository's recipients *and* to the writer's
  own identity (kept on the appliance, ``state_dir/repos/<repo id>/writer.txt``, mode 0600): the
  appliance can deduplicate, list, prune and check; a custodian's key can too, and can restore.
- A data key is made for each backup run, sealed with age to the recipients only, and dropped
  from memory when the run ends: nobody on the appliance can decrypt a blob afterwards.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyrage

from sealbox.crypto import agekeys
from sealbox.errors import CorruptFileError, KeyMaterialError, WrongKeyError

__all__ = ["DataKey", "WriterSecrets", "load_writer_identity", "new_writer_identity"]


@dataclass(frozen=True)
class WriterSecrets:
    repo_id: str
    id_key: bytes
    index_key: bytes
    chunker_seed: int

    def check(self) -> str:
        """A check value of these secrets (hex SHA-256, domain-separated), which the signed
        repository config carries: a key object that opens but does not match it was planted."""
        body = b"sealbox-repo-keys\x00" + self.repo_id.encode() + b"\x00"
        body += self.id_key + self.index_key + self.chunker_seed.to_bytes(8, "big")
        return hashlib.sha256(body).hexdigest()

    @classmethod
    def generate(cls, repo_id: str) -> WriterSecrets:
        return cls(repo_id, os.urandom(32), os.urandom(32), int.from_bytes(os.urandom(7), "big"))

    def seal(self, recipients: list[str]) -> bytes:
        body = orjson.dumps(
            {
                "format": "sealbox-repo-keys",
                "version": 1,
                "repo": self.repo_id,
                "id_key": self.id_key.hex(),
                "index_key": self.index_key.hex(),
                "chunker_seed": self.chunker_seed,
            }
        )
        return bytes(agekeys.encrypt(body, recipients))

    @classmethod
    def unseal(cls, data: bytes, identities: list[Any], what: str) -> WriterSecrets:
        try:
            plain = agekeys.decrypt(data, identities)
        except pyrage.DecryptError as exc:
            raise WrongKeyError(f"{what}: the key given does not open this repository") from exc
        try:
            doc: Any = orjson.loads(plain)
            keys = cls(
                str(doc["repo"]),
                bytes.fromhex(doc["id_key"]),
                bytes.fromhex(doc["index_key"]),
                int(doc["chunker_seed"]),
            )
            if len(keys.id_key) != 32 or len(keys.index_key) != 32:
                raise ValueError("keys of the wrong size")
            keys.check()  # the seed must fit its 8 bytes (OverflowError, a ValueError, if not)
            return keys
        except (orjson.JSONDecodeError, KeyError, ValueError, TypeError, OverflowError) as exc:
            raise CorruptFileError(f"{what}: malformed repository key object") from exc
        finally:
            agekeys.wipe(plain)


@dataclass(frozen=True)
class DataKey:
    key_id: bytes  # the content name of its sealed object, as bytes
    key: bytes


def new_writer_identity(path: Path) -> str:
    """Create the writer's age identity file (0600); return its recipient."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    secret = agekeys.new_secret()
    try:
        identity = agekeys.identity_from_secret(secret)
    finally:
        agekeys.wipe(secret)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"# sealbox repository writer key\n{identity}\n")
    return agekeys.recipient_of(identity)


def load_writer_identity(path: Path) -> list[Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyMaterialError(
            f"no writer key for this repository in {path.parent} (was it initialised from another"
            " machine or state dir? set --state-dir / SEALBOX_STATE_DIR)"
        ) from None
    except OSError as exc:
        raise KeyMaterialError(f"cannot read writer key {path}: {exc.strerror}") from exc
    return agekeys.load_identities(text, str(path))
