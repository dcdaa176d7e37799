"""What a mounted share's failures and mount options mean, for the ``file://`` backend: errno to
typed errors (:func:`os_error`), and ``/proc/self/mountinfo`` read for the mount holding a
directory (:func:`mount_of`) and for the options that make fsync promise less
(:func:`durability_warnings`)."""

from __future__ import annotations

import errno
from pathlib import Path

from sealbox.errors import DestinationError, TransientDestinationError

__all__ = [
    "NO_HARD_LINKS",
    "NoHardLinksError",
    "durability_warnings",
    "mount_of",
    "os_error",
]

# What a network mount (CIFS, NFS, sshfs/FUSE) answers when its server or the path to it went
# away: transient (retry.Retrying retries them with backoff, then the run fails as a lost share).
# EIO is here too: it is what a FUSE or CIFS client returns for a dropped session, and on a local
# disk a retry costs only time. ENOTCONN is a FUSE mount whose daemon died (sshfs killed),
# ESTALE an NFS/CIFS handle the server forgot (it restarted, or the export changed).
_LOST = frozenset(
    getattr(errno, name)
    for name in [
        "ENOTCONN",
        "ESTALE",
        "EIO",
        "ETIMEDOUT",
        "EHOSTDOWN",
        "EHOSTUNREACH",
        "ENETDOWN",
        "ENETUNREACH",
        "ENETRESET",
        "ECONNRESET",
        "ECONNABORTED",
        "ECONNREFUSED",
        "ENOLINK",
        "ECOMM",
        "EREMOTEIO",
        "ENODEV",
        "ENXIO",
        "ENOMEDIUM",
        "EPIPE",
        "EREMCHG",
    ]
    if hasattr(errno, name)
)
# Permanent: a retry a few seconds later would fail the same way (someone must make room, or
# remount the share read-write). EROFS is also what a server's failing disk turns a mount into.
_FULL = frozenset((errno.ENOSPC, errno.EDQUOT))


# What link() answers on a filesystem without hard links (smbnetfs, FAT, a CIFS server without
# them): the tmp file is ours, so EPERM here is not a permission problem.
NO_HARD_LINKS = frozenset(
    getattr(errno, name)
    for name in ("EPERM", "EOPNOTSUPP", "ENOTSUP", "ENOSYS")
    if hasattr(errno, name)
)


class NoHardLinksError(OSError):
    """link() refused for want of hard links (told apart from the other failures of a put)."""


def os_error(display: str, action: str, exc: OSError) -> DestinationError:
    """The typed error for an ``OSError`` met doing ``action`` at the share ``display``, by
    errno: a lost share (``_LOST``) is transient, a full or read-only one is not. One line: the
    destination, what was being done (the object's name), and the system's reason."""
    reason = exc.strerror or type(exc).__name__
    if exc.errno in _LOST:
        return TransientDestinationError(
            f"{display}: the share was lost: cannot {action}: {reason}"
            " (is it still mounted, and its server up?)"
        )
    if exc.errno in _FULL:
        return DestinationError(f"{display}: the share is full: cannot {action}: {reason}")
    if exc.errno == errno.EROFS:
        return DestinationError(f"{display}: the share is read-only: cannot {action}: {reason}")
    return DestinationError(f"{display}: cannot {action}: {reason}")


def mount_of(target: str) -> tuple[str, set[str]] | None:
    """The type and the options (per-mount and the filesystem's) of the mount holding the real
    path ``target``: the longest mount point above it wins. None if mountinfo is unreadable."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    best, found = "", None
    for line in lines:
        fields = line.split(" - ")
        if len(fields) != 2:
            continue
        left, right = fields[0].split(), fields[1].split()
        mount = left[4].replace("\\040", " ")
        if (target == mount or target.startswith(mount.rstrip("/") + "/")) and len(mount) >= len(
            best
        ):
            superopts = right[2].split(",") if len(right) > 2 else []
            best, found = mount, (right[0], {*left[5].split(","), *superopts})
    return found


def durability_warnings(display: str, mount: tuple[str, set[str]] | None) -> tuple[str, ...]:
    """What a mount's own options say about fsync: options that make a successful fsync promise
    less than it should. Only what the client can see; docs/design/threat-model.md lists what it
    cannot (a server that acknowledges fsync without committing)."""
    if mount is None:
        return ()
    kind, options = mount
    warnings: list[str] = []
    if kind in ("cifs", "smb3") and "nostrictsync" in options:
        warnings.append(
            f"{display}: mounted with nostrictsync: fsync is not sent to the server, so a"
            " backup the client calls durable may be lost if the server crashes"
        )
    if "nobarrier" in options or "barrier=0" in options:
        warnings.append(
            f"{display}: mounted with write barriers off ({kind} nobarrier): a power loss can"
            " lose data that fsync reported as on disk"
        )
    return tuple(warnings)
