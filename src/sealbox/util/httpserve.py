"""The HTTP server of the agent and of the daemon: uvicorn (h11), with limits against slow peers.

uvicorn alone lets a network peer hold resources without sending a request: nothing bounds the
time to finish a request's headers (one byte a minute keeps a connection), a TLS handshake may
take 60 s, and connections are not limited per address. The protocol class here adds:

- a **header deadline**, from accept (the TLS handshake included) to the end of the request
  headers, and from the first byte of each later request on a kept-alive connection; a peer that
  sends nothing or dribbles is cut off (bodies have their own rules: the agent's upload rate);
- **connection limits** per client address and overall, counted from accept, so a flood of
  half-open TLS handshakes is refused before it costs any CPU.

TLS is started by the protocol itself (``loop.start_tls``) rather than by the listener, because
the listener would only hand the connection over after the handshake, out of reach of both rules.
Client addresses are the socket's peer: ``X-Forwarded-For`` is never trusted (proxy_headers off),
so a local process cannot pick the address its failed logins are counted against.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from sealbox.errors import ConfigError

__all__ = ["Limits", "guarded_protocol", "server_config", "tls_context"]

log = logging.getLogger("sealbox.http")


@dataclass(frozen=True)
class Limits:
    header_timeout: float = 10.0  # seconds from accept (or a next request's first byte)
    max_connections: int = 256
    max_per_client: int = 16


@dataclass
class _Book:
    """Open connections, overall and per client address (one book per server)."""

    total: int = 0
    per_client: dict[str, int] = field(default_factory=dict)
    last_warning: float = 0.0

    def admit(self, client: str, limits: Limits) -> str | None:
        """Count the connection in, or say why it is refused."""
        if self.total >= limits.max_connections:
            return f"{limits.max_connections} connections are open: try again later"
        if self.per_client.get(client, 0) >= limits.max_per_client:
            return f"{client} has {limits.max_per_client} connections open already"
        self.total += 1
        self.per_client[client] = self.per_client.get(client, 0) + 1
        return None

    def leave(self, client: str) -> None:
        self.total -= 1
        left = self.per_client[client] - 1
        if left:
            self.per_client[client] = left
        else:  # the table holds live addresses only: it cannot grow without bound
            del self.per_client[client]

    def warn(self, message: str) -> None:
        """Log a refusal, at most once a minute (a flood must not flood the log too)."""
        now = time.monotonic()
        if now - self.last_warning > 60:
            self.last_warning = now
            log.warning("connection refused: %s", message)


def _busy(message: str) -> bytes:
    body = ('{"error": "' + message.replace('"', "'") + '"}').encode()
    return (
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
        b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


class _GuardedH11(H11Protocol):
    limits: ClassVar[Limits]
    tls: ClassVar[ssl.SSLContext | None]
    book: ClassVar[_Book]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client: str | None = None  # set while counted in the book
        self._raw: asyncio.BaseTransport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._http = False  # whether uvicorn's connection_made has run (after TLS, if any)
        self._early: list[bytes] = []  # decrypted before start_tls returned to us

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        client = str(peer[0]) if peer else "?"
        refusal = self.book.admit(client, self.limits)
        if refusal is not None:
            self.book.warn(refusal)
            if self.tls is None:  # a plain-HTTP peer can read why; a TLS one just sees a close
                assert isinstance(transport, asyncio.WriteTransport)
                transport.write(_busy(refusal))
            transport.close()
            return
        self._client, self._raw = client, transport
        self._arm()
        if self.tls is None:
            self._http = True
            super().connection_made(transport)  # type: ignore[arg-type]
            return
        assert isinstance(transport, asyncio.ReadTransport)
        transport.pause_reading()  # the ClientHello waits for start_tls, never reaches h11
        self.loop.create_task(self._start_tls(transport))

    async def _start_tls(self, raw: asyncio.BaseTransport) -> None:
        assert self.tls is not None
        try:
            transport = await self.loop.start_tls(
                raw,  # type: ignore[arg-type]
                self,
                self.tls,
                server_side=True,
                ssl_handshake_timeout=self.limits.header_timeout,
            )
        except Exception:  # a failed or abandoned handshake: the peer is gone or refused
            raw.close()
            self._release()
            return
        if transport is None or transport.is_closing() or self._client is None:
            return
        self._http = True
        super().connection_made(transport)
        early, self._early = self._early, []
        for data in early:
            self.data_received(data)

    def data_received(self, data: bytes) -> None:
        if not self._http:  # the TLS layer delivers the first bytes before start_tls returns
            self._early.append(data)
            return
        if self._deadline is None and self.conn.their_state is h11.IDLE:
            self._arm()  # the first byte of a next request on a kept-alive connection
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm()  # the headers are complete

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()
        if self._http:
            super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.limits.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        transport = self.transport if self._http else self._raw
        if transport is not None:
            transport.abort()  # type: ignore[attr-defined]

    def _release(self) -> None:
        self._disarm()
        if self._client is not None:
            self.book.leave(self._client)
            self._client = None


def guarded_protocol(limits: Limits, tls: ssl.SSLContext | None) -> type[asyncio.Protocol]:
    """A protocol class for ``uvicorn.Config(http=...)``, with its own connection book."""
    return type(
        "GuardedH11Protocol",
        (_GuardedH11,),
        {"limits": limits, "tls": tls, "book": _Book()},
    )


def tls_context(cert: Path, key: Path, client_ca: Path | None = None) -> ssl.SSLContext:
    """A server context (TLS 1.2 or newer); with ``client_ca``, client certificates from that CA
    are required (mutual TLS). Raises ConfigError if a file cannot be loaded."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert), str(key))
        if client_ca is not None:
            context.load_verify_locations(cafile=str(client_ca))
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"TLS files {cert}, {key}: cannot load them ({exc})") from exc
    return context


def server_config(
    app: Any,
    host: str,
    port: int,
    limits: Limits,
    tls: ssl.SSLContext | None = None,
    **options: Any,
) -> uvicorn.Config:
    """A uvicorn config serving ``app`` through the guarded protocol (TLS when ``tls``)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=guarded_protocol(limits, tls),
        proxy_headers=False,
        server_header=False,
        **options,
    )
