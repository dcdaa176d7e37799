"""Receiving an upload's body into a temporary file, under the agent's rules for slow peers.

Two clocks bound a body: the idle timeout (no byte for that long) and the minimum rate (after a
grace period, the whole upload may take no longer than ``grace + bytes / min_rate``). The idle
timeout alone let a client send one byte every 59 s and hold a connection, a temporary file and
a quota reservation forever; the rate rule does not reset when a byte arrives.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request

__all__ = ["Refused", "UploadRules", "receive", "same_bytes"]


@dataclass(frozen=True)
class UploadRules:
    idle_timeout: float = 60.0
    min_rate: float = 64 * 1024  # bytes per second; 0 turns the rule off
    grace: float = 10.0  # seconds before the rate is enforced (TLS, slow starts)


class Refused(Exception):
    """The upload is refused with this status and one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def receive(
    request: Request,
    tmp: Path,
    rules: UploadRules,
    max_object: int,
    grow: Callable[[int], None] | None,
) -> int:
    """Stream the body into ``tmp`` (created exclusively, fsynced) and return its size.

    ``grow`` (uploads without Content-Length) is told the bytes received so far, after each
    chunk: it reserves quota and raises QuotaExceeded the moment they would not fit. Raises Refused (408 too slow, 413 too big).
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    size = 0
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    with open(fd, "wb") as handle:
        stream = request.stream().__aiter__()
        while True:
            wait = rules.idle_timeout
            if rules.min_rate > 0:
                wait = min(wait, started + rules.grace + size / rules.min_rate - loop.time())
            if wait <= 0:
                raise Refused(408, _too_slow(rules))
            try:
                chunk = await asyncio.wait_for(stream.__anext__(), timeout=wait)
            except StopAsyncIteration:
                break
            except TimeoutError:
                if wait < rules.idle_timeout:
                    raise Refused(408, _too_slow(rules)) from None
                raise Refused(
                    408, f"no data for {rules.idle_timeout:g} s: upload abandoned"
                ) from None
            size += len(chunk)
            if size > max_object:
                raise Refused(413, f"object larger than {max_object} bytes")
            if grow is not None:
                grow(size)
            await asyncio.to_thread(handle.write, chunk)
        handle.flush()
        await asyncio.to_thread(os.fsync, handle.fileno())
    return size


def _too_slow(rules: UploadRules) -> str:
    return (
        f"upload slower than {rules.min_rate:g} bytes/s (after {rules.grace:g} s of grace):"
        " abandoned"
    )


def same_bytes(a: Path, b: Path) -> bool:
    """Whether ``b`` is a regular file holding the same bytes as ``a`` (a symlink or a directory
    never matches)."""
    try:
        with (
            open(a, "rb") as ha,
            open(os.open(b, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb") as hb,
        ):
            theirs = os.fstat(hb.fileno())
            if not stat.S_ISREG(theirs.st_mode) or theirs.st_size != os.fstat(ha.fileno()).st_size:
                return False
            while True:
                ca, cb = ha.read(1 << 20), hb.read(1 << 20)
                if ca != cb:
                    return False
                if not ca:
                    return True
    except OSError:
        return False
