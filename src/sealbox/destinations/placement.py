"""The off-appliance rule: a backup destination must not live on the appliance itself.

A network destination (S3 endpoint, SFTP server) whose address is one of the appliance's own,
loopback included, is on the appliance.

For a ``file://`` destination we compare the device (``st_dev``) of the destination directory (or
its nearest existing parent) with the devices of the appliance's own data: ``state_dir``,
``var_dir`` and the given source paths. Same device means the backup would die with the appliance.
A destination directory that does not exist where that is so is most often a share that is not
mounted: a DestinationError ("is the share mounted?"), not a PolicyError, so the run is reported
as its destination failing (and alerts as ``destination.unreachable``).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from sealbox.errors import DestinationError, PolicyError

__all__ = ["check_destination", "device_of", "is_local_address"]


def device_of(path: Path) -> int | None:
    """``st_dev`` of ``path`` or of its nearest existing parent; None if nothing exists."""
    current = path.absolute()
    while True:
        try:
            return os.stat(current).st_dev
        except FileNotFoundError:
            if current.parent == current:
                return None
            current = current.parent
        except OSError:
            return None


def _network_host(url: str) -> str | None:
    """The host a network destination talks to (an S3 endpoint's, an SFTP server's)."""
    if "://" not in url:
        return None
    parts = urlsplit(url)
    if parts.scheme == "s3":
        endpoint = parse_qs(parts.query).get("endpoint", [""])[0]
        return urlsplit(endpoint).hostname if endpoint else None
    if parts.scheme in ("file", "memory"):
        return None
    return parts.hostname


def is_local_address(host: str) -> bool:
    """True if ``host`` resolves to an address of this machine (loopback included).

    An address is ours exactly when we can bind a socket to it, which covers every interface
    without parsing the system's network configuration.
    """
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    for family, _, _, _, sockaddr in infos:
        if ipaddress.ip_address(sockaddr[0]).is_loopback:
            return True
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((sockaddr[0], 0))
                return True
            except OSError:
                continue
    return False


def _local_root(url: str) -> Path | None:
    if "://" not in url:
        return Path(url)
    parts = urlsplit(url)
    return Path(unquote(parts.path)) if parts.scheme == "file" else None


def _exists(path: Path) -> bool:
    try:
        os.stat(path)
    except FileNotFoundError:
        return False
    except OSError:
        return True  # there, but not answering: the backend names the failure
    return True


def check_destination(name: str, url: str, allow: bool, appliance_paths: list[Path]) -> list[str]:
    """Return warnings, or raise PolicyError when the destination is on the appliance."""
    host = _network_host(url)
    if host is not None:
        if not is_local_address(host):
            return []
        what = f"destination {name!r} ({host}) is an address of this appliance"
        if not allow:
            raise PolicyError(
                f"{what}: a backup on the appliance dies with it; use a remote destination"
                " (or set allow_on_appliance = true for tests and demos)"
            )
        return [f"{what}: allowed by allow_on_appliance, but this backup is NOT off the appliance"]
    root = _local_root(url)
    if root is None:
        return []
    dest_dev = device_of(root)
    clashes = [p for p in appliance_paths if dest_dev is not None and device_of(p) == dest_dev]
    if not clashes:
        return []
    what = f"destination {name!r} ({root}) is on the same filesystem as {clashes[0]}"
    if not allow and not _exists(root):
        # Most often a share that is not mounted (or went away): its mount point, an empty
        # directory of the appliance's own disk, is where the destination would be made.
        raise DestinationError(
            f"destination {name!r} ({root}): no such directory, and where it would be made is"
            f" the appliance's own filesystem (that of {clashes[0]}): is the share mounted?"
            " Nothing was written."
        )
    if not allow:
        raise PolicyError(
            f"{what}: a backup on the appliance dies with it; use a remote destination"
            " (or set allow_on_appliance = true for tests and demos)"
        )
    return [f"{what}: allowed by allow_on_appliance, but this backup is NOT off the appliance"]
