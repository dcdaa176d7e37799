"""The backend Protocol: the whole storage side, as small as it can be.

Object names are relative, ``/``-separated paths (see :func:`validate_name`). Contract:

- ``put`` is atomic: a reader sees the whole object or nothing, never a prefix. It is durable
  (survives a crash of the machine) once ``flush`` has returned: callers flush before writing an
  object that refers to earlier ones (an index naming packs, a snapshot naming an index). With
  ``exclusive=True`` it fails with :class:`~sealbox.errors.DestinationError` if the name exists,
  and never replaces it.
- ``get`` of a missing object and ``stat`` of a missing object raise
  :class:`~sealbox.errors.NotFoundError`; ``delete`` of a missing object is not an error
  (idempotent).
- ``list`` yields every object whose name starts with ``prefix``, in no particular order, and never
  temporary objects of an unfinished ``put``.
- Any I/O failure is raised as :class:`~sealbox.errors.DestinationError` with a message that names
  the destination but no credential: :class:`~sealbox.errors.TransientDestinationError` when it
  may pass (a dropped connection, a timeout, a server's 5xx or 429), and an exclusive ``put`` on
  a taken name raises :class:`~sealbox.errors.ObjectExistsError`. Backends never retry
  themselves: :mod:`sealbox.backends.retry` does, around every backend alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from sealbox.errors import CorruptFileError, DestinationError

__all__ = [
    "Backend",
    "Capacity",
    "ObjectInfo",
    "append_only",
    "read_bounded",
    "sweep_temporaries",
    "validate_name",
]

# Letters, digits and a few punctuation marks per component. This keeps names portable across
# filesystems, SFTP servers and object stores, and rules out every path trick by construction:
# no "..", no absolute paths, no backslashes, no control characters, no empty components.
_COMPONENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$")


def validate_name(name: str) -> str:
    """Return ``name`` if it is a safe object name, else raise DestinationError."""
    parts = name.split("/")
    if not name or len(name) > 1024 or not all(_COMPONENT.match(p) for p in parts):
        raise DestinationError(f"invalid object name {name[:80]!r}")
    if any(p in (".", "..") for p in parts):
        raise DestinationError(f"invalid object name {name[:80]!r}")
    return name


@dataclass(frozen=True)
class ObjectInfo:
    name: str
    size: int
    mtime: float


@dataclass(frozen=True)
class Capacity:
    """Bytes free and total at the destination (None where the backend cannot tell)."""

    free: int | None
    total: int | None


@runtime_checkable
class Backend(Protocol):
    """A place that stores named immutable objects."""

    @property
    def display(self) -> str:
        """The destination as a person should see it: no password, token or key."""
        ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...

    def stat(self, name: str) -> ObjectInfo: ...

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes: ...

    def put(
        self, name: str, data: bytes | bytearray | memoryview, *, exclusive: bool = False
    ) -> None: ...

    def flush(self) -> None: ...

    def delete(self, name: str) -> None: ...

    def capacity(self) -> Capacity: ...

    def close(self) -> None: ...


def read_bounded(backend: Backend, name: str, limit: int, what: str | None = None) -> bytes:
    """An object read whole, but never more than ``limit`` bytes: what a destination returns is
    not trusted, and a planted multi-gigabyte object must not exhaust memory. One request (a
    range read of ``limit + 1`` bytes); CorruptFileError when the object is larger."""
    data = backend.get(name, 0, limit + 1)
    if len(data) > limit:
        raise CorruptFileError(
            f"{what or name}: larger than {limit:,} bytes, more than such an object can be"
            " (junk or tampering): not read"
        )
    return data


def append_only(backend: Backend) -> bool:
    """Whether the destination refuses to delete or replace what it stores (the agent's
    ``--append-only``): maintenance that deletes (index compaction, retention, prune) is then the
    storage side's job, and the appliance skips it instead of failing its backups."""
    return bool(getattr(backend, "append_only", False))


def sweep_temporaries(backend: Backend, recursive: bool = True) -> int:
    """Remove the temporary files of interrupted writes, where the backend has them to remove
    (``file://``: ``LocalBackend.sweep_temporaries`` states the rule); how many it removed. A
    writing run calls it once, before it writes."""
    sweep = getattr(backend, "sweep_temporaries", None)
    return int(sweep(recursive=recursive)) if callable(sweep) else 0
