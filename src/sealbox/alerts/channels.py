"""Alert channels: email over SMTP and syslog to a SIEM. One ``send`` each; failures raise
:class:`~sealbox.errors.AlertDeliveryError` with a message naming the channel, never a password.

- Email: ``smtplib``; implicit TLS (``tls = true``, port 465) or STARTTLS (required when
  ``starttls = true``: a server that does not offer it is an error, never a silent downgrade);
  certificates verified against ``ca_file`` or the system store; login when ``username`` is set,
  the password read from ``password_file`` at send time.
- Syslog: RFC 5424 over UDP (one datagram per message, RFC 5426), TCP (RFC 6587 octet counting)
  or TLS (RFC 5425, verified, optional client certificate), payload CEF, LEEF 2.0, ECS or OCSF
  JSON, or plain.
- HTTP: a SIEM's ingestion API (Splunk HEC, Elasticsearch bulk), ECS or OCSF JSON.
"""

from __future__ import annotations

import http.client
import os
import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson

from sealbox.alerts import formats
from sealbox.alerts.events import Event, severity_rank
from sealbox.config.models import AlertsConfig, EmailAlert, HttpAlert, SyslogAlert
from sealbox.errors import AlertDeliveryError
from sealbox.util.secretfile import read_secret_file

__all__ = ["Channel", "EmailChannel", "HttpChannel", "SyslogChannel", "channels_from_config"]


class Channel(Protocol):
    @property
    def id(self) -> str: ...

    def wants(self, event: Event) -> bool: ...

    def send(self, event: Event) -> None: ...


def _tls_context(ca_file: os.PathLike[str] | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=os.fspath(ca_file) if ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class EmailChannel:
    def __init__(self, config: EmailAlert) -> None:
        self.config = config

    @property
    def id(self) -> str:
        return f"email:{self.config.host}:{self.config.port}:{','.join(self.config.to)}"

    def wants(self, event: Event) -> bool:
        return severity_rank(event.severity) <= severity_rank(self.config.min_severity)

    def message(self, event: Event) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = formats.email_subject(event)
        msg["From"] = self.config.from_
        msg["To"] = ", ".join(self.config.to)
        msg["Date"] = formatdate(event.time.timestamp(), usegmt=True)
        msg["Message-ID"] = make_msgid(domain=event.host or None)
        msg["X-Sealbox-Event"] = f"{event.type.id} {event.name}"
        msg.set_content(formats.email_text(event))
        msg.add_alternative(formats.email_html(event), subtype="html")
        return msg

    def send(self, event: Event) -> None:
        c = self.config
        where = f"email via {c.host}:{c.port}"
        try:
            password = None
            if c.username and c.password_file:
                password = c.password_file.read_text().strip()
            client: smtplib.SMTP
            if c.tls:
                client = smtplib.SMTP_SSL(
                    c.host, c.port, timeout=c.timeout_seconds, context=_tls_context(c.ca_file)
                )
            else:
                client = smtplib.SMTP(c.host, c.port, timeout=c.timeout_seconds)
            with client:
                client.ehlo()
                if c.starttls and not c.tls:
                    if not client.has_extn("starttls"):
                        raise AlertDeliveryError(
                            f"{where}: the server does not offer STARTTLS (starttls = true):"
                            " refusing to send in clear"
                        )
                    client.starttls(context=_tls_context(c.ca_file))
                    client.ehlo()
                if c.username:
                    client.login(c.username, password or "")
                client.send_message(self.message(event))
        except AlertDeliveryError:
            raise
        except smtplib.SMTPAuthenticationError as exc:
            raise AlertDeliveryError(f"{where}: login refused ({exc.smtp_code})") from exc
        except smtplib.SMTPResponseException as exc:
            raw = exc.smtp_error
            reason = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw or "")
            raise AlertDeliveryError(f"{where}: {exc.smtp_code} {reason}".strip()) from exc
        except (smtplib.SMTPException, ssl.SSLError, OSError) as exc:
            raise AlertDeliveryError(f"{where}: {exc}") from exc


class SyslogChannel:
    def __init__(self, config: SyslogAlert) -> None:
        self.config = config

    @property
    def id(self) -> str:
        c = self.config
        return f"syslog:{c.transport}:{c.host}:{c.port}:{c.format}"

    def wants(self, event: Event) -> bool:
        return severity_rank(event.severity) <= severity_rank(self.config.min_severity)

    def line(self, event: Event) -> str:
        form = self.config.format
        if form in ("ecs", "ocsf"):
            payload = formats.json_payload(form, event)
        else:
            payload = {"cef": formats.cef, "leef": formats.leef, "plain": formats.plain}[form](
                event
            )
        return formats.rfc5424(event, payload, self.config.facility, os.getpid())

    def send(self, event: Event) -> None:
        c = self.config
        where = f"syslog {c.transport}://{c.host}:{c.port}"
        line = self.line(event)
        try:
            if c.transport == "udp":
                family = socket.getaddrinfo(c.host, c.port, type=socket.SOCK_DGRAM)[0]
                with socket.socket(family[0], socket.SOCK_DGRAM) as sock:
                    sock.sendto(line.encode("utf-8")[:8192], family[4])
                return
            stream = socket.create_connection((c.host, c.port), timeout=c.timeout_seconds)
            try:
                if c.transport == "tls":
                    context = _tls_context(c.ca_file)
                    if c.client_cert:
                        context.load_cert_chain(c.client_cert, c.client_key)
                    stream = context.wrap_socket(stream, server_hostname=c.host)
                stream.sendall(formats.frame(line))
            finally:
                stream.close()
        except (ssl.SSLError, OSError) as exc:
            raise AlertDeliveryError(f"{where}: {exc}") from exc


MAX_ANSWER = 1 << 20  # what a collector may answer; more is junk


class HttpChannel:
    """Splunk HEC (``POST /services/collector/event``, ``Authorization: Splunk TOKEN``, a JSON
    envelope with ``event``) or Elasticsearch bulk (``POST /_bulk``, NDJSON: a ``create`` action
    line and the document; ``Authorization: ApiKey KEY``); the answer is checked (HEC ``code``
    0, bulk ``errors`` false), not only the HTTP status."""

    def __init__(self, config: HttpAlert) -> None:
        self.config = config

    @property
    def id(self) -> str:
        c = self.config
        return f"http:{c.kind}:{c.url}:{c.format}"

    def wants(self, event: Event) -> bool:
        return severity_rank(event.severity) <= severity_rank(self.config.min_severity)

    def request(self, event: Event) -> tuple[str, dict[str, str], bytes]:
        """(path, headers, body) of the delivery (the token not included)."""
        c = self.config
        document = formats.json_payload(c.format, event)
        if c.kind == "splunk":
            envelope: dict[str, Any] = {
                "time": round(event.time.timestamp(), 3),
                "host": event.host,
                "source": "sealbox",
                "sourcetype": f"sealbox:{c.format}",
                "event": orjson.loads(document),
            }
            if c.index:
                envelope["index"] = c.index
            return (
                "/services/collector/event",
                {"Content-Type": "application/json"},
                orjson.dumps(envelope),
            )
        action = orjson.dumps({"create": {"_index": c.index or "sealbox-events"}})
        body = action + b"\n" + document.encode() + b"\n"
        return "/_bulk", {"Content-Type": "application/x-ndjson"}, body

    def send(self, event: Event) -> None:
        c = self.config
        where = f"{c.kind} {c.url}"
        path, headers, body = self.request(event)
        if c.token_file is not None:
            token = read_secret_file(c.token_file, f"alerts.http {c.url}")
            headers["Authorization"] = ("Splunk " if c.kind == "splunk" else "ApiKey ") + token
        parts = urlsplit(c.url)
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(
                parts.hostname or "",
                parts.port,
                timeout=c.timeout_seconds,
                context=_tls_context(c.ca_file),
            )
        else:
            conn = http.client.HTTPConnection(
                parts.hostname or "", parts.port, timeout=c.timeout_seconds
            )
        try:
            conn.request("POST", parts.path.rstrip("/") + path, body=body, headers=headers)
            answer = conn.getresponse()
            data = answer.read(MAX_ANSWER + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise AlertDeliveryError(f"{where}: {exc}") from exc
        finally:
            conn.close()
        if answer.status != 200:
            raise AlertDeliveryError(f"{where}: HTTP {answer.status} {answer.reason}")
        try:
            doc = orjson.loads(data) if len(data) <= MAX_ANSWER else None
        except orjson.JSONDecodeError:
            doc = None
        if not isinstance(doc, dict):
            raise AlertDeliveryError(f"{where}: the collector's answer is not JSON")
        if c.kind == "splunk" and doc.get("code") != 0:
            raise AlertDeliveryError(f"{where}: {str(doc.get('text', 'refused'))[:200]}")
        if c.kind == "elasticsearch" and doc.get("errors") is not False:
            raise AlertDeliveryError(f"{where}: the bulk request reported errors")


def channels_from_config(alerts: AlertsConfig) -> list[EmailChannel | SyslogChannel | HttpChannel]:
    found: list[EmailChannel | SyslogChannel | HttpChannel] = []
    for c in alerts.channels():
        if isinstance(c, EmailAlert):
            found.append(EmailChannel(c))
        elif isinstance(c, SyslogAlert):
            found.append(SyslogChannel(c))
        else:
            found.append(HttpChannel(c))
    return found
