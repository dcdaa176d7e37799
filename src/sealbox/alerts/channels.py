"""Alert channels: email over SMTP and syslog to a SIEM. One ``send`` each; failures raise
:class:`~sealbox.errors.AlertDeliveryError` with a message naming the channel, never a password.

- Email: ``smtplib``; implicit TLS (``tls = true``, port 465) or STARTTLS (required when
  ``starttls = true``: a server that does not offer it is an error, never a silent downgrade);
  certificates verified against ``ca_file`` or the system store; login when ``username`` is set,
  the password read from ``password_file`` at send time.
- Syslog: RFC 5424 over UDP (one datagram per message, RFC 5426), TCP (RFC 6587 octet counting)
  or TLS (RFC 5425, verified, optional client certificate), payload CEF, LEEF 2.0 or plain.
"""

from __future__ import annotations

import os
import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Protocol

from sealbox.alerts import formats
from sealbox.alerts.events import Event, severity_rank
from sealbox.config.models import AlertsConfig, EmailAlert, SyslogAlert
from sealbox.errors import AlertDeliveryError

__all__ = ["Channel", "EmailChannel", "SyslogChannel", "channels_from_config"]


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
        render = {"cef": formats.cef, "leef": formats.leef, "plain": formats.plain}
        payload = render[self.config.format](event)
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


def channels_from_config(alerts: AlertsConfig) -> list[EmailChannel | SyslogChannel]:
    return [
        EmailChannel(c) if isinstance(c, EmailAlert) else SyslogChannel(c)
        for c in alerts.channels()
    ]
