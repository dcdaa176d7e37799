"""``memory://NAME`` backend: objects in a dict, shared by name within the process (tests)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sealbox.backends.base import Capacity, ObjectInfo, validate_name
from sealbox.errors import NotFoundError, ObjectExistsError

if TYPE_CHECKING:
    from sealbox.backends.options import MemoryOptions

__all__ = ["SCHEMES", "MemoryBackend", "open_destination"]

_STORES: dict[str, dict[str, tuple[bytes, float]]] = {}
_LOCK = threading.Lock()


SCHEMES = ("memory",)


def open_destination(url: str, options: MemoryOptions | None = None) -> MemoryBackend:
    return MemoryBackend.from_url(url)


class MemoryBackend:
    def __init__(self, name: str) -> None:
        self.name = name
        with _LOCK:
            self.objects = _STORES.setdefault(name, {})

    @classmethod
    def from_url(cls, url: str) -> MemoryBackend:
        return cls(urlsplit(url).netloc or "default")

    @staticmethod
    def reset(name: str | None = None) -> None:
        with _LOCK:
            if name is None:
                _STORES.clear()
            else:
                _STORES.pop(name, None)

    @property
    def display(self) -> str:
        return f"memory://{self.name}"

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        with _LOCK:
            items = [(k, len(v[0]), v[1]) for k, v in self.objects.items() if k.startswith(prefix)]
        for name, size, mtime in items:
            yield ObjectInfo(name, size, mtime)

    def stat(self, name: str) -> ObjectInfo:
        with _LOCK:
            entry = self.objects.get(validate_name(name))
        if entry is None:
            raise NotFoundError(f"{self.display}: no object {name!r}")
        return ObjectInfo(name, len(entry[0]), entry[1])

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        with _LOCK:
            entry = self.objects.get(validate_name(name))
        if entry is None:
            raise NotFoundError(f"{self.display}: no object {name!r}")
        data = entry[0]
        return data[offset:] if length is None else data[offset : offset + length]

    def put(
        self, name: str, data: bytes | bytearray | memoryview, *, exclusive: bool = False
    ) -> None:
        validate_name(name)
        with _LOCK:
            if exclusive and name in self.objects:
                raise ObjectExistsError(f"{self.display}: object {name!r} exists already")
            self.objects[name] = (bytes(data), time.time())

    def flush(self) -> None:
        return None

    def delete(self, name: str) -> None:
        with _LOCK:
            self.objects.pop(validate_name(name), None)

    def capacity(self) -> Capacity:
        return Capacity(free=None, total=None)

    def close(self) -> None:
        return None
