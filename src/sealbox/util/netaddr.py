"""Address checks shared by the agent (server and client): is a host loopback-only."""

from __future__ import annotations

import ipaddress
import socket

__all__ = ["loopback_host"]


def loopback_host(host: str) -> bool:
    """Whether every address ``host`` (a name or an IP literal, brackets allowed) resolves to
    is a loopback address; False when it does not resolve."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), None)
    except (OSError, UnicodeError):
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)
