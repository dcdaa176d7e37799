"""Dashboard logins and sessions.

- Users from ``[[daemon.users]]`` log in with a password checked against its argon2 hash
  (argon2-cffi); the API token logs in too, as an operator. Roles: ``viewer`` (read-only) and
  ``operator`` (may start runs).
- A session is 32 random bytes kept in the daemon's memory (nothing to forge, nothing on disk; a
  restart logs everyone out), sent as a cookie with HttpOnly, SameSite=Strict, Path=/ and Secure
  (browsers accept Secure cookies from https:// and from loopback http://).
- Each session has its own CSRF token; every POST carries it in a form field, compared in
  constant time, and a POST whose Origin is another site is refused as well.
- Failed logins are throttled per client address: after 5 within 5 minutes, 15 minutes of refusals.
"""

from __future__ import annotations

import contextlib
import hmac
import secrets
import time
from dataclasses import dataclass, field

from sealbox.config.models import DaemonConfig

__all__ = ["COOKIE", "Session", "Sessions"]

COOKIE = "sealbox_session"
MAX_FAILURES, FAILURE_WINDOW, LOCKOUT = 5, 300.0, 900.0


@dataclass
class Session:
    user: str
    role: str
    csrf: str
    expires: float

    @property
    def operator(self) -> bool:
        return self.role == "operator"


@dataclass
class Sessions:
    sessions: dict[str, Session] = field(default_factory=dict)
    failures: dict[str, list[float]] = field(default_factory=dict)

    def locked_out(self, client: str) -> bool:
        now = time.time()
        recent = [t for t in self.failures.get(client, []) if now - t < LOCKOUT]
        self.failures[client] = recent
        window = [t for t in recent if now - t < FAILURE_WINDOW]
        return len(window) >= MAX_FAILURES

    def login(
        self, config: DaemonConfig, token: str | None, client: str, name: str, password: str
    ) -> tuple[str, Session] | None:
        """A new session for good credentials; None (and a recorded failure) otherwise."""
        from argon2 import PasswordHasher
        from argon2.exceptions import InvalidHashError, VerificationError

        role: str | None = None
        if token and not name and hmac.compare_digest(password.encode(), token.encode()):
            role, name = "operator", "token"
        else:
            hasher = PasswordHasher()
            for user in config.users:
                if hmac.compare_digest(user.name.encode(), name.encode()):
                    try:
                        hasher.verify(user.password_hash, password)
                        role = user.role
                    except (VerificationError, InvalidHashError):
                        role = None
                    break
            else:  # unknown user: spend the same time as a known one
                with contextlib.suppress(VerificationError, InvalidHashError):
                    hasher.verify(_dummy_hash(), password)
        if role is None:
            self.failures.setdefault(client, []).append(time.time())
            return None
        self._expire()
        sid = secrets.token_urlsafe(32)
        session = Session(
            name, role, secrets.token_urlsafe(32), time.time() + config.session_hours * 3600
        )
        self.sessions[sid] = session
        return sid, session

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        session = self.sessions.get(sid)
        if session is None or session.expires < time.time():
            self.sessions.pop(sid, None)
            return None
        return session

    def logout(self, sid: str | None) -> None:
        if sid:
            self.sessions.pop(sid, None)

    def _expire(self) -> None:
        now = time.time()
        for sid in [s for s, v in self.sessions.items() if v.expires < now]:
            del self.sessions[sid]


def csrf_ok(session: Session, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(session.csrf.encode(), (given or "").encode())


_dummy: list[str] = []


def _dummy_hash() -> str:
    """A real hash of a random password, verified against for unknown names (same timing)."""
    if not _dummy:
        from argon2 import PasswordHasher

        _dummy.append(PasswordHasher().hash(secrets.token_hex(16)))
    return _dummy[0]
