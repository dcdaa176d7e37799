"""``sftp://user@host[:port]/path`` backend (what users know as "rsync over SSH"), with paramiko.

Key authentication only; the server's host key is always checked against a known_hosts file
(never trusted on first use). Each thread gets its own SSH connection and SFTP channel, so
uploads and downloads run side by side; a dropped connection is re-established and the operation
retried once. Puts write a temporary name and rename it into place (exclusive puts use the plain
SFTP rename, which refuses to replace).
"""

from __future__ import annotations

import os
import posixpath
import secrets
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from sealbox.backends.base import Capacity, ObjectInfo, validate_name
from sealbox.errors import ConfigError, DestinationError, NotFoundError

__all__ = ["SFTPBackend"]

T = TypeVar("T")
READ_REQUEST = 255 * 1024


def _prefer(available: tuple[str, ...], first: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(c for c in first if c in available) + tuple(c for c in available if c not in first)


class SFTPBackend:
    def __init__(
        self, host: str, port: int, user: str, root: str, key_file: Path, known_hosts: Path
    ) -> None:
        self.host, self.port, self.user, self.root = host, port, user, root.rstrip("/") or "/"
        self.key_file, self.known_hosts = key_file, known_hosts
        self._lock = threading.Lock()
        self._transports: list[Any] = []
        self._local = threading.local()

    @classmethod
    def from_url(
        cls, url: str, key_file: Path | None = None, known_hosts: Path | None = None
    ) -> SFTPBackend:
        parts = urlsplit(url)
        if not parts.hostname or not parts.username:
            raise ConfigError("sftp:// URLs name a user and a host: sftp://user@host[:port]/path")
        key = key_file or (
            Path(os.environ["SEALBOX_SSH_KEY"]) if os.environ.get("SEALBOX_SSH_KEY") else None
        )
        hosts = known_hosts or (
            Path(os.environ["SEALBOX_SSH_KNOWN_HOSTS"])
            if os.environ.get("SEALBOX_SSH_KNOWN_HOSTS")
            else Path.home() / ".ssh" / "known_hosts"
        )
        if key is None:
            raise ConfigError(
                "sftp destination: no SSH key (set ssh_key_file, or SEALBOX_SSH_KEY for the plumbing)"
            )
        return cls(
            parts.hostname,
            parts.port or 22,
            unquote(parts.username),
            unquote(parts.path) or "/",
            key,
            hosts,
        )

    round_trips = True  # each request costs a round trip: readers fetch whole packs

    @property
    def display(self) -> str:
        return f"sftp://{self.user}@{self.host}:{self.port}{self.root}"

    # -- connection ----------------------------------------------------------------------------
    def _connect(self) -> Any:
        import paramiko

        try:
            key = paramiko.PKey.from_path(str(self.key_file))
        except (OSError, paramiko.SSHException) as exc:
            raise ConfigError(
                f"{self.display}: cannot load the SSH key {self.key_file}: {exc}"
            ) from exc
        try:
            host_keys = paramiko.HostKeys(str(self.known_hosts))
        except OSError as exc:
            raise ConfigError(
                f"{self.display}: cannot read known_hosts {self.known_hosts}: {exc}"
            ) from exc
        entry = f"[{self.host}]:{self.port}" if self.port != 22 else self.host
        expected = host_keys.lookup(entry)
        if not expected:
            raise DestinationError(
                f"{self.display}: the host key of {entry} is not in {self.known_hosts}"
                " (add it: ssh-keyscan -p PORT HOST >> known_hosts, after checking it)"
            )
        try:
            transport = paramiko.Transport((self.host, self.port))
            transport.banner_timeout = transport.auth_timeout = 30
            # AES-GCM first: one pass for encryption and integrity (packs are already sealed;
            # SSH only has to carry them), markedly faster than CTR + HMAC in paramiko.
            options = transport.get_security_options()
            options.ciphers = _prefer(
                options.ciphers, ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
            )
            options.digests = _prefer(options.digests, ("hmac-sha2-256-etm@openssh.com",))
            transport.start_client(timeout=30)
            server_key = transport.get_remote_server_key()
            if (
                server_key.get_name() not in expected
                or expected[server_key.get_name()] != server_key
            ):
                transport.close()
                raise DestinationError(
                    f"{self.display}: the server's host key does not match known_hosts"
                    " (possible man in the middle): refusing to connect"
                )
            transport.auth_publickey(self.user, key)
        except DestinationError:
            raise
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise DestinationError(f"{self.display}: cannot connect: {exc}") from exc
        return transport

    def _sftp(self) -> Any:
        """This thread's SFTP client, on this thread's own SSH connection: paramiko moves every
        byte through Python, so one connection per thread is what lets transfers use both cores."""
        transport = getattr(self._local, "transport", None)
        if transport is None or not transport.is_active():
            transport = self._connect()
            self._local.transport = transport
            self._local.client = transport.open_sftp_client()
            with self._lock:
                self._transports.append(transport)
        return self._local.client

    def _run(self, action: str, operation: Callable[[Any], T]) -> T:
        """Run an SFTP operation; if the link dropped, reconnect and retry it once."""
        import paramiko

        for attempt in (1, 2):
            try:
                return operation(self._sftp())
            except FileNotFoundError:
                raise
            except (OSError, paramiko.SSHException, EOFError) as exc:
                if attempt == 2 or not self._dropped():
                    raise self._fail(action, exc) from exc
                self._local.transport = None
        raise AssertionError("unreachable")

    def _dropped(self) -> bool:
        transport = getattr(self._local, "transport", None)
        return transport is None or not transport.is_active()

    def _fail(self, action: str, exc: BaseException) -> DestinationError:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return DestinationError(f"{self.display}: cannot {action}: {reason}")

    def _path(self, name: str) -> str:
        return posixpath.join(self.root, validate_name(name))

    # -- the Protocol --------------------------------------------------------------------------
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        found: list[ObjectInfo] = []

        def walk(sftp: Any) -> None:
            found.clear()
            stack = [""]
            while stack:
                rel = stack.pop()
                try:
                    entries = sftp.listdir_attr(
                        posixpath.join(self.root, rel) if rel else self.root
                    )
                except FileNotFoundError:
                    continue
                for entry in entries:
                    if entry.filename.startswith("."):
                        continue
                    name = f"{rel}/{entry.filename}" if rel else entry.filename
                    if stat.S_ISDIR(entry.st_mode or 0):
                        if name.startswith(prefix[: len(name)]) or prefix.startswith(name):
                            stack.append(name)
                    elif name.startswith(prefix):
                        found.append(
                            ObjectInfo(name, int(entry.st_size or 0), float(entry.st_mtime or 0))
                        )

        self._run("list", walk)
        yield from found

    def stat(self, name: str) -> ObjectInfo:
        try:
            attrs = self._run(f"stat {name}", lambda sftp: sftp.stat(self._path(name)))
        except FileNotFoundError:
            raise NotFoundError(f"{self.display}: no object {name!r}") from None
        return ObjectInfo(name, int(attrs.st_size or 0), float(attrs.st_mtime or 0))

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        def read(sftp: Any) -> bytes:
            with sftp.open(self._path(name), "rb") as handle:
                # OpenSSH serves reads of up to 256 KiB; paramiko asks for 32 KiB by default,
                # and every request costs Python-level work on both sides.
                handle.MAX_REQUEST_SIZE = READ_REQUEST
                handle.seek(offset)
                if length is None:
                    handle.prefetch()
                    data: bytes = handle.read()
                else:
                    data = handle.read(length)
                return data

        try:
            return self._run(f"read {name}", read)
        except FileNotFoundError:
            raise NotFoundError(f"{self.display}: no object {name!r}") from None

    def _mkdirs(self, sftp: Any, directory: str) -> None:
        missing = []
        while directory not in ("", "/"):
            try:
                sftp.stat(directory)
                break
            except FileNotFoundError:
                missing.append(directory)
                directory = posixpath.dirname(directory)
        for path in reversed(missing):
            try:
                sftp.mkdir(path)
            except OSError:
                sftp.stat(path)  # made by a concurrent put: fine

    def put(
        self, name: str, data: bytes | bytearray | memoryview, *, exclusive: bool = False
    ) -> None:
        final = self._path(name)
        tmp = posixpath.join(posixpath.dirname(final), f".tmp-{secrets.token_hex(8)}")

        def upload(sftp: Any) -> None:
            self._mkdirs(sftp, posixpath.dirname(final))
            with sftp.open(tmp, "wb") as handle:
                handle.set_pipelined(True)
                view = memoryview(data)
                for start in range(0, len(view), 1 << 20):
                    handle.write(bytes(view[start : start + (1 << 20)]))
            try:
                if exclusive:
                    sftp.rename(tmp, final)  # SFTP rename refuses to replace an existing name
                else:
                    sftp.posix_rename(tmp, final)
            except OSError:
                sftp.remove(tmp)
                if exclusive:
                    raise FileExistsError(final) from None
                raise

        try:
            self._run(f"write {name}", upload)
        except DestinationError as exc:
            if exclusive and isinstance(exc.__cause__, FileExistsError):
                raise DestinationError(f"{self.display}: object {name!r} exists already") from exc
            raise

    def delete(self, name: str) -> None:
        try:
            self._run(f"delete {name}", lambda sftp: sftp.remove(self._path(name)))
        except FileNotFoundError:
            return

    def flush(self) -> None:
        return None  # the server writes on close; OpenSSH has no portable sync for the directory

    def capacity(self) -> Capacity:
        """Free and total bytes from OpenSSH's ``statvfs@openssh.com`` extension (paramiko has no
        call for it, so the request is sent as a raw extended SFTP message)."""
        from paramiko.sftp import CMD_EXTENDED

        def statvfs(sftp: Any) -> tuple[int, int]:
            path = self.root
            while True:  # the nearest existing directory (the root may not exist yet)
                try:
                    _, message = sftp._request(CMD_EXTENDED, "statvfs@openssh.com", path)
                    break
                except FileNotFoundError:
                    if path in ("", "/"):
                        raise
                    path = posixpath.dirname(path)
            _bsize, frsize, blocks, _bfree, bavail = (message.get_int64() for _ in range(5))
            return bavail * frsize, blocks * frsize

        try:
            free, total = self._run("measure free space", statvfs)
        except DestinationError:
            return Capacity(free=None, total=None)  # a server without the extension
        return Capacity(free=free, total=total)

    def close(self) -> None:
        with self._lock:
            for transport in self._transports:
                transport.close()
            self._transports.clear()
        self._local = threading.local()
