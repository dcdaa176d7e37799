"""Destination probes: write, read back and delete a small canary object, with timings."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from typing import Any

from sealbox.config.models import Config
from sealbox.errors import SealboxError
from sealbox.product_repo import destination_backend

__all__ = ["ProbeResult", "probe", "probe_all"]


@dataclass
class ProbeResult:
    destination: str
    url: str
    ok: bool
    error: str | None = None
    write_ms: float | None = None
    read_ms: float | None = None
    delete_ms: float | None = None
    free: int | None = None
    total: int | None = None
    filesystem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def probe(config: Config, name: str) -> ProbeResult:
    backend = destination_backend(config, name)
    result = ProbeResult(name, backend.display, ok=False)
    canary = f"probes/canary-{config.appliance.name}-{os.urandom(6).hex()}"
    payload = os.urandom(4096)
    try:
        started = time.perf_counter()
        backend.put(canary, payload, exclusive=True)
        backend.flush()
        result.write_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        if backend.get(canary) != payload:
            raise SealboxError(
                f"{backend.display}: the canary read back differs from what was written"
            )
        result.read_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        backend.delete(canary)
        result.delete_ms = (time.perf_counter() - started) * 1000
        capacity = backend.capacity()
        result.free, result.total = capacity.free, capacity.total
        result.filesystem = getattr(backend, "filesystem", lambda: None)()
        result.ok = True
    except SealboxError as exc:
        result.error = str(exc)
    finally:
        backend.close()
    return result


def probe_all(config: Config, only: str | None = None) -> list[ProbeResult]:
    names = [only] if only else sorted(config.destinations)
    return [probe(config, name) for name in names]
