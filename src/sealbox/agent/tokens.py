"""Agent tokens: each reaches one namespace; only a SHA-256 of the secret is stored.

A token is ``sbx_<id>_<secret>`` (the secret 32 random bytes, base32): high-entropy, so a plain
SHA-256 is a sound verifier (no password stretching needed) and is compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from sealbox.errors import ConfigError, NotFoundError

__all__ = ["NAMESPACE", "Token", "TokenStore"]

NAMESPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


@dataclass
class Token:
    id: str
    namespace: str
    sha256: str
    created: str
    admin: bool = False
    revoked: str | None = None


class TokenStore:
    def __init__(self, root: Path) -> None:
        self.path = root / ".sealbox-agent" / "tokens.json"

    def tokens(self) -> list[Token]:
        try:
            doc: Any = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return []
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ConfigError(f"agent token store {self.path} is unreadable: {exc}") from exc
        return [Token(**t) for t in doc.get("tokens", [])]

    def _save(self, tokens: list[Token]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(f".tokens.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(
                orjson.dumps(
                    {"version": 1, "tokens": [asdict(t) for t in tokens]},
                    option=orjson.OPT_INDENT_2,
                )
            )
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)

    def create(self, namespace: str, admin: bool = False) -> tuple[Token, str]:
        if not NAMESPACE.match(namespace):
            raise ConfigError(f"namespace {namespace!r}: use letters, digits, '.', '_' or '-'")
        token_id = secrets.token_hex(4)
        secret = base64.b32encode(secrets.token_bytes(32)).decode().rstrip("=").lower()
        value = f"sbx_{token_id}_{secret}"
        record = Token(
            token_id,
            namespace,
            hashlib.sha256(value.encode()).hexdigest(),
            datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            admin,
        )
        self._save([*self.tokens(), record])
        return record, value

    def revoke(self, token_id: str) -> Token:
        tokens = self.tokens()
        for token in tokens:
            if token.id == token_id and token.revoked is None:
                token.revoked = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                self._save(tokens)
                return token
        raise NotFoundError(f"no active token {token_id!r}")

    def check(self, value: str) -> Token | None:
        """The live token this value is, or None."""
        parts = value.split("_")
        if len(parts) != 3 or parts[0] != "sbx":
            return None
        digest = hashlib.sha256(value.encode()).hexdigest()
        for token in self.tokens():
            if (
                token.id == parts[1]
                and token.revoked is None
                and hmac.compare_digest(token.sha256, digest)
            ):
                return token
        return None
