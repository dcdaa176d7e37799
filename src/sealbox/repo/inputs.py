"""What a backup reads: files (without touching their atime) and streams (a producer's
pipe, such as a database dump), through reused buffers."""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import queue
import termios
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sealbox.errors import SealboxError

__all__ = ["STREAM_DIR", "PipeReader", "Stream", "bytes_stream", "fill_file", "open_file"]

_O_NOATIME = getattr(os, "O_NOATIME", 0)


@dataclass
class Stream:
    """Bytes produced during the backup, stored as a file of the snapshot (``.sealbox/NAME``).

    ``open`` starts the producer and returns a readable descriptor and a ``finish(failed)`` that
    waits for the producer and raises a SealboxError if it did not succeed.
    """

    name: str
    open: Callable[[], tuple[int, Callable[..., None]]]


STREAM_DIR = ".sealbox"


def bytes_stream(name: str, produce: Callable[[], bytes | bytearray]) -> Stream:
    """A Stream of bytes made in memory (an inventory, an SQLite image), fed through a pipe."""

    def open_() -> tuple[int, Callable[..., None]]:
        data = produce()
        read_fd, write_fd = os.pipe()
        errors: list[OSError] = []

        def feed() -> None:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(write_fd, view[: 1 << 20]) :]
            except OSError as exc:
                errors.append(exc)
            finally:
                os.close(write_fd)

        thread = threading.Thread(target=feed, daemon=True)
        thread.start()

        def finish(failed: bool = False) -> None:
            thread.join()
            if errors and not failed:
                raise SealboxError(f"{name}: {errors[0].strerror}")

        return read_fd, finish

    return Stream(name=name, open=open_)


def open_file(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | _O_NOATIME | os.O_NOFOLLOW)
    except PermissionError:
        if not _O_NOATIME:
            raise
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW)  # O_NOATIME needs ownership


_F_SETPIPE_SZ = 1031
_GATHER = 256 * 1024


class PipeReader:
    """Drains a producer's pipe in its own thread, up to 32 MiB ahead of the chunker.

    A pipe holds 64 KiB: read in step with chunking, the dump tool would stall every time we
    compress a segment, and the two would take turns instead of running side by side.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.queue: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=32)
        self.pending = memoryview(b"")
        self.done = False
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sealbox-pipe", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(self.fd, _F_SETPIPE_SZ, 1 << 20)  # let the producer run further ahead
        waiting = array.array("i", [0])
        try:
            while not self.halt.is_set():
                # Let data gather before reading: a tool writing 4 KiB at a time would otherwise
                # wake us (and cost a context switch) for every write.
                fcntl.ioctl(self.fd, termios.FIONREAD, waiting)
                if waiting[0] < _GATHER:
                    time.sleep(0.002)
                data = os.read(self.fd, 1 << 20)
                self._put(data)
                if not data:
                    return
        except OSError as exc:
            self._put(exc)

    def _put(self, item: bytes | BaseException) -> None:
        while not self.halt.is_set():
            try:
                self.queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def fill(self, fd: int, view: memoryview, start: int) -> int:
        pos = start
        while pos < len(view) and not self.done:
            if not self.pending:
                item = self.queue.get()
                if isinstance(item, BaseException):
                    raise item
                if not item:
                    self.done = True
                    break
                self.pending = memoryview(item)
            take = min(len(self.pending), len(view) - pos)
            view[pos : pos + take] = self.pending[:take]
            self.pending = self.pending[take:]
            pos += take
        return pos

    def stop(self) -> None:
        self.halt.set()
        self.thread.join(timeout=5)


def fill_file(fd: int, view: memoryview, start: int) -> int:
    """Read until the buffer is full or the file ends; return the filled length."""
    pos = start
    while pos < len(view):
        n = os.readv(fd, [view[pos:]])
        if n == 0:
            break
        pos += n
    return pos
