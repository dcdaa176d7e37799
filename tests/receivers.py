"""Real alert receivers on 127.0.0.1: an SMTP server (aiosmtpd; plain, STARTTLS, implicit TLS,
with or without login) and syslog listeners (UDP, TCP and TLS with RFC 6587 octet counting).
Plus strict parsers for what arrives: RFC 5424 headers, CEF and LEEF 2.0."""

from __future__ import annotations

import re
import socket
import socketserver
import ssl
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import Message
from pathlib import Path
from typing import Any

from tests.servers import free_port


def _until(received: list[Any], count: int, seconds: float) -> list[Any]:
    """``received`` once it holds ``count`` items, or after ``seconds`` (tests then assert)."""
    deadline = time.monotonic() + seconds
    while len(received) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return received


@dataclass
class SMTPReceiver:
    """aiosmtpd's Controller: a real SMTP server in a thread, messages kept in order."""

    cert: Path | None = None
    key: Path | None = None
    mode: str = "plain"  # plain | starttls | tls
    login: tuple[str, str] | None = None
    messages: list[Message] = field(default_factory=list)
    envelopes: list[Any] = field(default_factory=list)
    port: int = 0

    def start(self) -> SMTPReceiver:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        receiver = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                receiver.envelopes.append(envelope)
                receiver.messages.append(
                    message_from_bytes(envelope.content, policy=policy.default)
                )
                return "250 OK"

        def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any):
            ok = (
                self.login is not None
                and data.login.decode() == self.login[0]
                and data.password.decode() == self.login[1]
            )
            return AuthResult(success=ok, handled=False)

        context = None
        if self.mode != "plain":
            assert self.cert and self.key
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.cert, self.key)
        self.port = free_port()
        kwargs: dict[str, Any] = {"hostname": "127.0.0.1", "port": self.port}
        if self.mode == "starttls":
            kwargs.update(tls_context=context, require_starttls=True)
        if self.mode == "tls":
            kwargs.update(ssl_context=context)
        if self.login:
            # aiosmtpd only counts STARTTLS as TLS: on an implicit-TLS port AUTH is safe anyway.
            kwargs.update(authenticator=authenticate, auth_require_tls=self.mode != "tls")
        self.controller = Controller(Handler(), **kwargs)
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def wait(self, count: int, seconds: float = 10) -> list[Message]:
        return _until(self.messages, count, seconds)


class SyslogReceiver:
    """A syslog collector: ``udp`` (one message per datagram), ``tcp`` or ``tls`` (octet-counted
    frames, RFC 6587 / RFC 5425). Frames that break the framing are recorded as errors."""

    def __init__(
        self,
        transport: str,
        cert: Path | None = None,
        key: Path | None = None,
        port: int | None = None,
    ) -> None:
        self.transport = transport
        self.messages: list[str] = []
        self.errors: list[str] = []
        receiver = self

        class UDPHandler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                receiver.messages.append(self.request[0].decode("utf-8"))

        class StreamHandler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                stream = self.rfile
                while True:
                    digits = b""
                    while (ch := stream.read(1)) not in (b" ", b""):
                        if not ch.isdigit() or len(digits) > 8:
                            receiver.errors.append(f"bad frame length {digits + ch!r}")
                            return
                        digits += ch
                    if not digits:
                        return
                    body = stream.read(int(digits))
                    if len(body) != int(digits):
                        receiver.errors.append("short frame")
                        return
                    receiver.messages.append(body.decode("utf-8"))

        self.port = port or free_port()
        server: socketserver.BaseServer
        if transport == "udp":
            server = socketserver.ThreadingUDPServer(("127.0.0.1", self.port), UDPHandler)
        else:
            server = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), StreamHandler)
            if transport == "tls":
                assert cert and key
                context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                context.load_cert_chain(cert, key)
                server.socket = context.wrap_socket(server.socket, server_side=True)
        server.daemon_threads = True  # type: ignore[attr-defined]
        self.server = server
        self.thread = threading.Thread(target=server.serve_forever, daemon=True)

    def start(self) -> SyslogReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait(self, count: int, seconds: float = 10) -> list[str]:
        return _until(self.messages, count, seconds)


def closed_port() -> int:
    """A port with nothing listening (for channels that must fail)."""
    port = free_port()
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0
    return port


# -- grammars ---------------------------------------------------------------------------------
_RFC5424 = re.compile(
    r"^<(?P<pri>\d{1,3})>1 (?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d))"
    r" (?P<host>[\x21-\x7e]{1,255}) (?P<app>[\x21-\x7e]{1,48}) (?P<procid>[\x21-\x7e]{1,128})"
    r" (?P<msgid>[\x21-\x7e]{1,32}) (?P<sd>-|(?:\[[^\]]*\])+) (?P<msg>.*)$",
    re.DOTALL,
)


def parse_rfc5424(line: str) -> dict[str, Any]:
    match = _RFC5424.match(line)
    assert match, f"not an RFC 5424 message: {line!r}"
    doc: dict[str, Any] = match.groupdict()
    pri = int(doc["pri"])
    assert pri <= 191
    doc["facility"], doc["severity"] = divmod(pri, 8)
    return doc


def _split_unescaped(text: str, sep: str, limit: int) -> list[str]:
    parts, current, i = [], "", 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current += text[i : i + 2]
            i += 2
            continue
        if ch == sep and len(parts) < limit:
            parts.append(current)
            current = ""
        else:
            current += ch
        i += 1
    parts.append(current)
    return parts


def parse_cef(payload: str) -> dict[str, Any]:
    """CEF:Version|Vendor|Product|Version|SignatureID|Name|Severity|Extension, strictly."""
    parts = _split_unescaped(payload, "|", 7)
    assert len(parts) == 8 and parts[0] == "CEF:0", payload
    header = [p.replace("\\|", "|").replace("\\\\", "\\") for p in parts[:7]]
    severity = int(header[6])
    assert 0 <= severity <= 10
    ext: dict[str, str] = {}
    # keys are alphanumeric; a value runs until the next unescaped " key=".
    for match in re.finditer(r"([A-Za-z0-9_]+)=((?:\\.|[^\\])*?)(?= [A-Za-z0-9_]+=|$)", parts[7]):
        raw = match.group(2)
        assert re.fullmatch(r"(?:\\[\\=nr]|[^\\=\n\r])*", raw), f"bad escaping in {raw!r}"
        value = re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(m.group(1), m.group(1)), raw)
        ext[match.group(1)] = value
    return {
        "vendor": header[1],
        "product": header[2],
        "version": header[3],
        "signature": header[4],
        "name": header[5],
        "severity": severity,
        "ext": ext,
    }


def parse_leef(payload: str) -> dict[str, Any]:
    """LEEF:2.0|Vendor|Product|Version|EventID|DelimiterChar|attributes."""
    parts = payload.split("|", 6)
    assert len(parts) == 7 and parts[0] == "LEEF:2.0", payload
    delimiter = parts[5]
    if re.fullmatch(r"(?:0x|x)[0-9A-Fa-f]{2,4}", delimiter):
        delimiter = chr(int(delimiter.split("x")[1], 16))
    assert len(delimiter) == 1
    attrs = {}
    for pair in parts[6].split(delimiter):
        key, sep, value = pair.partition("=")
        assert sep and re.fullmatch(r"[A-Za-z0-9_]+", key), pair
        assert "\n" not in value
        attrs[key] = value
    return {
        "vendor": parts[1],
        "product": parts[2],
        "version": parts[3],
        "event": parts[4],
        "attrs": attrs,
    }


def cef_labelled(ext: dict[str, str]) -> dict[str, str]:
    """CEF custom fields by their labels: {"last_success": ...} from cs2Label/cs2."""
    return {ext[k]: ext[k[: -len("Label")]] for k in ext if k.endswith("Label")}


class SIEMReceiver:
    """A collector that speaks a SIEM's documented HTTP ingestion API and checks each request
    strictly: ``splunk`` (HTTP Event Collector: ``POST /services/collector/event``,
    ``Authorization: Splunk TOKEN``, a JSON envelope with ``time``, ``host``, ``sourcetype`` and
    an ``event`` object; answers ``{"text": "Success", "code": 0}``) or ``elasticsearch`` (bulk:
    ``POST /_bulk``, ``Content-Type: application/x-ndjson``, ``Authorization: ApiKey KEY``,
    action and document lines each ending in a newline; answers ``errors: false``). What breaks
    the format is recorded in ``errors`` and answered 400."""

    def __init__(self, kind: str, token: str) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.kind, self.token = kind, token
        self.documents: list[dict[str, Any]] = []  # the events as the SIEM would index them
        self.envelopes: list[dict[str, Any]] = []
        self.errors: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def answer(self, status: int, doc: dict[str, Any]) -> None:
                import orjson

                body = orjson.dumps(doc)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                try:
                    receiver.check(self.path, dict(self.headers), body)
                except PermissionError as exc:
                    self.answer(401, {"text": str(exc), "code": 4})
                    return
                except (AssertionError, ValueError) as exc:
                    receiver.errors.append(str(exc))
                    self.answer(400, {"text": str(exc), "code": 6})
                    return
                if receiver.kind == "splunk":
                    self.answer(200, {"text": "Success", "code": 0})
                else:
                    self.answer(
                        200, {"took": 1, "errors": False, "items": [{"create": {"status": 201}}]}
                    )

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def check(self, path: str, headers: dict[str, str], body: bytes) -> None:
        import orjson

        auth = headers.get("Authorization", "")
        if self.kind == "splunk":
            assert path == "/services/collector/event", f"HEC path {path}"
            if auth != f"Splunk {self.token}":
                raise PermissionError("Invalid token")
            envelope = orjson.loads(body)
            assert isinstance(envelope, dict) and isinstance(envelope.get("event"), dict)
            assert isinstance(envelope.get("time"), int | float), "HEC time is epoch seconds"
            assert envelope.get("host") and envelope.get("sourcetype"), "HEC host, sourcetype"
            self.envelopes.append(envelope)
            self.documents.append(envelope["event"])
            return
        assert path == "/_bulk", f"bulk path {path}"
        assert headers.get("Content-Type") == "application/x-ndjson", "bulk content type"
        if auth != f"ApiKey {self.token}":
            raise PermissionError("missing authentication credentials")
        assert body.endswith(b"\n"), "bulk bodies end with a newline"
        lines = body.split(b"\n")[:-1]
        assert len(lines) % 2 == 0, "bulk: action and source lines in pairs"
        for action_line, source_line in zip(lines[::2], lines[1::2], strict=True):
            action = orjson.loads(action_line)
            assert list(action) == ["create"] and action["create"].get("_index"), "bulk action"
            self.envelopes.append(action)
            self.documents.append(orjson.loads(source_line))

    def start(self) -> SIEMReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait(self, count: int, seconds: float = 10) -> list[dict[str, Any]]:
        return _until(self.documents, count, seconds)
