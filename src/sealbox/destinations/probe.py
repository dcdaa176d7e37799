"""Destination probes: write, read back and delete a small canary object, with timings.

At a mounted (``file://``) destination the probe's write test also looks for a share that lies
about writes, as far as a client can see it: an exclusive create that does not refuse a taken name
(locks and exclusive puts would then not be exclusive), a replace that does not leave exactly the
new bytes, bytes read back past the client's cache that differ from those written and synced, and
mount options that turn fsync into less than a promise. What a client cannot see (a server that
acknowledges fsync without committing) is listed in docs/design/threat-model.md.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sealbox.backends.base import Backend, read_bounded
from sealbox.config.models import Config
from sealbox.destinations.repos import destination_backend
from sealbox.errors import DestinationError, ObjectExistsError, SealboxError
from sealbox.state.files import read_json, write_json
from sealbox.util.redact import mask_url

__all__ = ["ProbeResult", "last_probes", "probe", "probe_all"]


@dataclass
class ProbeResult:
    destination: str
    url: str
    ok: bool
    error: str | None = None
    list_ms: float | None = None
    write_ms: float | None = None
    read_ms: float | None = None
    delete_ms: float | None = None
    free: int | None = None
    total: int | None = None
    filesystem: str | None = None
    last_ok: str | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def probe(config: Config, name: str) -> ProbeResult:
    backend = destination_backend(config, name)
    result = ProbeResult(name, backend.display, ok=False)
    canary = f"probes/canary-{config.appliance.name}-{os.urandom(6).hex()}"
    payload = os.urandom(4096)
    try:
        started = time.perf_counter()
        # Listing first: a file:// share that is not mounted (its directory gone) fails here,
        # instead of the canary write creating the directory on the appliance's own disk.
        for _ in backend.list("probes/"):
            pass
        result.list_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        backend.put(canary, payload, exclusive=True)
        backend.flush()
        result.write_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        if read_bounded(backend, canary, len(payload)) != payload:
            raise SealboxError(
                f"{backend.display}: the canary read back differs from what was written"
            )
        result.read_ms = (time.perf_counter() - started) * 1000
        if callable(getattr(backend, "read_uncached", None)):
            result.warnings = _write_test(backend, canary, payload)
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


def _write_test(backend: Backend, canary: str, payload: bytes) -> list[str]:
    """What a mounted share gives away of lying about writes: a DestinationError for what makes
    it unsafe to back up to, and the warnings its mount options deserve."""
    where = backend.display
    try:
        backend.put(canary, os.urandom(len(payload)), exclusive=True)
    except ObjectExistsError:
        pass
    else:
        raise DestinationError(
            f"{where}: an exclusive write onto a taken name was accepted: the share does not keep"
            " exclusive create (O_EXCL, link) semantics, so two runs could both take one lock"
        )
    # A different length: a replace that is not atomic or not whole shows as a prefix, a mix
    # or the old bytes.
    replacement = os.urandom(len(payload) * 2)
    backend.put(canary, replacement)
    backend.flush()
    if read_bounded(backend, canary, len(replacement)) != replacement:
        raise DestinationError(
            f"{where}: a replaced canary reads back other bytes than the new ones: the share"
            " does not rename atomically (or lost the write)"
        )
    reread = getattr(backend, "read_uncached")  # noqa: B009 (checked by the caller)
    if reread(canary) != replacement:
        raise DestinationError(
            f"{where}: the canary read past this client's cache differs from what was written"
            " and synced: the share acknowledges writes it does not store"
        )
    return list(getattr(backend, "durability_warnings", tuple)())


def _probe_with_timeout(config: Config, name: str, timeout: float) -> ProbeResult:
    """One probe in a daemon thread: a destination that hangs (a dead NFS mount, a black-holed
    address) counts as unreachable after ``timeout`` and never blocks the caller longer."""
    box: list[ProbeResult] = []

    def work() -> None:
        try:
            box.append(probe(config, name))
        except Exception as exc:  # a backend bug must not hide the other destinations
            box.append(ProbeResult(name, "", ok=False, error=f"probe failed: {exc!r}"))

    thread = threading.Thread(target=work, name=f"sealbox-probe-{name}", daemon=True)
    thread.start()
    thread.join(timeout)
    if box:
        return box[0]
    url = mask_url(config.destinations[name].url.split("?")[0])
    return ProbeResult(name, url, ok=False, error=f"no answer within {timeout:g} s")


def probe_all(config: Config, only: str | None = None) -> list[ProbeResult]:
    names = [only] if only else sorted(config.destinations)
    timeout = config.probes.timeout_seconds
    results = [_probe_with_timeout(config, name, timeout) for name in names]
    _remember(config.appliance.state_dir, results)
    return results


def _remember(state_dir: Path, results: list[ProbeResult]) -> None:
    """Keep each destination's last probe and last success in ``state_dir/probes.json``."""
    path = state_dir / "probes.json"
    doc: dict[str, Any] = read_json(path)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for r in results:
        entry = doc.setdefault(r.destination, {})
        previous_ok = entry.get("last_ok")
        entry.update(r.to_dict())
        entry["time"] = now
        entry["last_ok"] = now if r.ok else previous_ok
        r.last_ok = entry["last_ok"]
        history = entry.setdefault("history", [])
        history.append([now, r.ok, r.write_ms, r.read_ms, r.error])
        del history[:-288]  # a day of five-minute probes
    write_json(path, doc)


def last_probes(state_dir: Path) -> dict[str, Any]:
    doc: dict[str, Any] = read_json(state_dir / "probes.json")
    return doc
