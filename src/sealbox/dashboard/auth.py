"""Dashboard logins and sessions.

- Users from ``[[daemon.users]]`` log in with a password checked against its argon2 hash
  (argon2-cffi); the API token logs in too, as an operator. Roles: ``viewer`` (read-only) and
  ``operator`` (may start runs).
- Password checks run on a small thread pool of their own, never on the event loop: argon2 is
  slow on purpose, and a login flood must not stall the API, the scheduler or the other pages.
  At most ``MAX_PENDING`` checks wait at once (beyond, "busy"), and two per client address.
- A session is 32 random bytes kept in the daemon's memory (nothing to forge, nothing on disk; a
  restart logs everyone out), sent as a cookie with HttpOnly, SameSite=Strict, Path=/ and Secure
  (browsers accept Secure cookies from https:// and from loopback http://).
- Each session has its own CSRF token; every POST carries it in a form field, compared in
  constant time, and a POST whose Origin is another site is refused as well.
- Failed logins are throttled per client address (:class:`Throttle`): 5 within 5 minutes lock the
  address out for 15 minutes. The table is bounded; see there.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sealbox.config.models import DaemonConfig

__all__ = ["COOKIE", "Session", "Sessions", "Throttle", "check_password"]

COOKIE = "sealbox_session"
MAX_FAILURES, FAILURE_WINDOW, LOCKOUT = 5, 300.0, 900.0
MAX_CLIENTS = 10_000  # addresses the failed-login table remembers
MAX_PENDING, MAX_PENDING_PER_CLIENT = 16, 2
# One thread: argon2 takes a core while it runs, and the API and the scheduler keep the others.
_verifier = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sealbox-argon2")


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
class _Failures:
    times: list[float]
    locked_until: float = 0.0


@dataclass
class Throttle:
    """Failed logins per client address, oldest first (a dict keeps insertion order and an
    address that fails again moves to the end).

    Bounded at ``capacity`` addresses: to make room, the oldest entry that is not locked out goes
    first. Locked-out addresses are never evicted, so rotating through many addresses cannot
    unlock one; if the whole table is locked out, new addresses are refused too (fail closed)
    until lockouts expire.
    """

    capacity: int = MAX_CLIENTS
    table: dict[str, _Failures] = field(default_factory=dict)

    def locked_out(self, client: str, now: float) -> bool:
        entry = self.table.get(client)
        if entry is not None:
            return now < entry.locked_until
        return len(self.table) >= self.capacity and not any(
            now >= e.locked_until for e in self.table.values()
        )

    def failed(self, client: str, now: float) -> None:
        entry = self.table.pop(client, None)
        if entry is None:
            if len(self.table) >= self.capacity and not self._evict_one(now):
                return  # all locked out: locked_out() refuses this address anyway
            entry = _Failures([])
        entry.times = [t for t in entry.times if now - t < FAILURE_WINDOW] + [now]
        if len(entry.times) >= MAX_FAILURES:
            entry.locked_until = now + LOCKOUT
        self.table[client] = entry

    def _evict_one(self, now: float) -> bool:
        for client, entry in self.table.items():
            if now >= entry.locked_until:
                del self.table[client]
                return True  # iteration stops right after the deletion
        return False


@dataclass
class Sessions:
    sessions: dict[str, Session] = field(default_factory=dict)
    throttle: Throttle = field(default_factory=Throttle)
    pending: dict[str, int] = field(default_factory=dict)

    def locked_out(self, client: str) -> bool:
        return self.throttle.locked_out(client, time.time())

    def busy(self, client: str) -> bool:
        """Whether the password checks waiting (overall, or of this address) are at the limit."""
        return (
            sum(self.pending.values()) >= MAX_PENDING
            or self.pending.get(client, 0) >= MAX_PENDING_PER_CLIENT
        )

    async def login(
        self, config: DaemonConfig, token: str | None, client: str, name: str, password: str
    ) -> tuple[str, Session] | None:
        """A new session for good credentials; None (and a recorded failure) otherwise. The
        caller checks :meth:`locked_out` and :meth:`busy` first."""
        self.pending[client] = self.pending.get(client, 0) + 1
        try:
            loop = asyncio.get_running_loop()
            found = await loop.run_in_executor(
                _verifier, check_password, config, token, name, password
            )
        finally:
            self.pending[client] -= 1
            if not self.pending[client]:
                del self.pending[client]
        if found is None:
            self.throttle.failed(client, time.time())
            return None
        user, role = found
        self._expire()
        sid = secrets.token_urlsafe(32)
        session = Session(
            user, role, secrets.token_urlsafe(32), time.time() + config.session_hours * 3600
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


def check_password(
    config: DaemonConfig, token: str | None, name: str, password: str
) -> tuple[str, str] | None:
    """(user, role) for good credentials, None otherwise. Slow (argon2): run it off the loop."""
    from argon2 import PasswordHasher
    from argon2.exceptions import InvalidHashError, VerificationError

    if token and not name and hmac.compare_digest(password.encode(), token.encode()):
        return "token", "operator"
    hasher = PasswordHasher()
    for user in config.users:
        if hmac.compare_digest(user.name.encode(), name.encode()):
            try:
                hasher.verify(user.password_hash, password)
            except (VerificationError, InvalidHashError):
                return None
            return name, user.role
    with contextlib.suppress(VerificationError, InvalidHashError):  # unknown: same time spent
        hasher.verify(_dummy_hash(), password)
    return None


def csrf_ok(session: Session, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(session.csrf.encode(), (given or "").encode())


_dummy: list[str] = []


def _dummy_hash() -> str:
    """A real hash of a random password, verified against for unknown names (same timing)."""
    if not _dummy:
        from argon2 import PasswordHasher

        _dummy.append(PasswordHasher().hash(secrets.token_hex(16)))
    return _dummy[0]
