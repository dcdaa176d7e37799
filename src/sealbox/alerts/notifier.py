"""Sending events without floods, and without ever failing a backup.

State under ``state_dir/alerts/`` (one lock file serialises the daemon and CLI runs):

- ``conditions.json``: the conditions in progress (a destination down, a kind's backups failing,
  a kind overdue ...), each with its start, last alert and count. :meth:`Notifier.condition`
  alerts when a condition starts and then at most every ``reminder_hours``;
  :meth:`Notifier.clear` ends it and sends the "it is back" event once.
- ``outbox.json``: events a channel did not accept, retried on every later send (probes, backups,
  ``sealbox notify test``) until delivered or older than ``retry_hours``.
- ``deliveries.jsonl``: what was sent where, with the result (the dashboard's alert page);
  trimmed to its newest half past 1 MiB.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from sealbox.alerts.channels import channels_from_config
from sealbox.alerts.events import Event, make_event
from sealbox.config.models import Config
from sealbox.errors import AlertDeliveryError
from sealbox.state.files import read_json, write_json

__all__ = ["Delivery", "Notifier", "recent_deliveries"]

if TYPE_CHECKING:
    from sealbox.alerts.channels import Channel

log = logging.getLogger("sealbox.alerts")
T = TypeVar("T")

_LOG_LIMIT = 1 << 20
_OUTBOX_LIMIT = 1000


@dataclass
class Delivery:
    time: str
    channel: str
    event: str
    severity: str
    message: str
    ok: bool
    error: str | None = None
    retry: bool = False


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


MAX_SEQUENCE = 2**31 - 1


def _parse(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


class Notifier:
    def __init__(self, config: Config, channels: Sequence[Channel] | None = None) -> None:
        self.config = config
        self.appliance = config.appliance.name
        self.dir = config.appliance.state_dir / "alerts"
        self.channels: list[Channel] = (
            list(channels) if channels is not None else _configured_channels(config)
        )
        self.reminder = timedelta(hours=config.alerts.reminder_hours)
        self.retry_window = timedelta(hours=config.alerts.retry_hours)

    # -- state files ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _load(self, name: str, default: Any) -> Any:
        return read_json(self.dir / name, default)

    def _save(self, name: str, doc: Any) -> None:
        write_json(self.dir / name, doc, indent=True)

    def _record(self, deliveries: list[Delivery]) -> None:
        if not deliveries:
            return
        path = self.dir / "deliveries.jsonl"
        with open(path, "ab") as handle:
            for d in deliveries:
                handle.write(orjson.dumps(asdict(d)) + b"\n")
        if path.stat().st_size > _LOG_LIMIT:
            lines = path.read_bytes().splitlines(keepends=True)
            tmp = self.dir / ".deliveries.tmp"
            tmp.write_bytes(b"".join(lines[len(lines) // 2 :]))
            os.replace(tmp, path)

    # -- sending -------------------------------------------------------------------------------
    def event(self, name: str, severity: str = "", **fields: Any) -> Event:
        return make_event(name, self.appliance, severity, **fields)

    def _deliver(self, channel: Channel, event: Event, retry: bool) -> Delivery:
        try:
            channel.send(event)
            return Delivery(
                _now_iso(), channel.id, event.name, event.severity, event.message, True, None, retry
            )
        except AlertDeliveryError as exc:
            log.warning("alert %s not delivered: %s (queued for retry)", event.name, exc)
            return Delivery(
                _now_iso(),
                channel.id,
                event.name,
                event.severity,
                event.message,
                False,
                str(exc),
                retry,
            )

    def _retry_outbox(self) -> list[Delivery]:
        queued: list[dict[str, Any]] = self._load("outbox.json", [])
        if not queued:
            return []
        by_id = {c.id: c for c in self.channels}
        keep: list[dict[str, Any]] = []
        done: list[Delivery] = []
        now = datetime.now(UTC)
        for item in queued:
            channel = by_id.get(item["channel"])
            if channel is None:
                continue  # the channel left the config
            event = Event.from_dict(item["event"])
            if now - event.time > self.retry_window:
                log.warning(
                    "alert %s to %s dropped after %s", event.name, channel.id, self.retry_window
                )
                continue
            result = self._deliver(channel, event, retry=True)
            done.append(result)
            if not result.ok:
                keep.append({**item, "attempts": item.get("attempts", 1) + 1})
        self._save("outbox.json", keep)
        return done

    def _number(self, event: Event) -> None:
        """The appliance's next event number (1, 2, ...; RFC 5424 allows up to 2**31-1, then
        it starts again at 1): a SIEM sees from a gap that an event never arrived."""
        if event.sequence is not None:
            return
        counter: dict[str, Any] = self._load("sequence.json", {})
        last = counter.get("last")
        number = last + 1 if isinstance(last, int) and 0 < last < MAX_SEQUENCE else 1
        self._save("sequence.json", {"last": number})
        event.sequence = number

    def _send_locked(self, event: Event, every_channel: bool = False) -> list[Delivery]:
        self._number(event)
        results = self._retry_outbox()
        fresh: list[Delivery] = []
        failed: list[dict[str, Any]] = []
        for channel in self.channels:
            if not every_channel and not channel.wants(event):
                continue
            result = self._deliver(channel, event, retry=False)
            fresh.append(result)
            if not result.ok:
                failed.append({"channel": channel.id, "event": event.to_dict(), "attempts": 1})
        if failed:
            queued: list[dict[str, Any]] = self._load("outbox.json", [])
            queued = (queued + failed)[-_OUTBOX_LIMIT:]
            self._save("outbox.json", queued)
        self._record(results + fresh)
        return fresh

    def send(self, event: Event, every_channel: bool = False) -> list[Delivery]:
        """Send to every channel whose minimum severity the event meets (or every channel);
        never raises for a channel's failure (it is logged, recorded and queued)."""
        with self._locked():
            return self._send_locked(event, every_channel)

    def flush(self) -> list[Delivery]:
        """Retry what is queued (the daemon calls this on its probe schedule)."""
        with self._locked():
            results = self._retry_outbox()
            self._record(results)
            return results

    # -- conditions ----------------------------------------------------------------------------
    def condition(self, key: str, event: Event) -> list[Delivery] | None:
        """A condition holds (again): alert if it is new or a reminder is due, else nothing.
        ``since`` and ``consecutive_failures`` are filled in from the condition's history."""
        with self._locked():
            state: dict[str, Any] = self._load("conditions.json", {})
            now = datetime.now(UTC)
            entry = state.get(key)
            if entry is None:
                entry = {"since": _now_iso(), "last_sent": None, "count": 0}
            entry["count"] += 1
            event.fields.setdefault("since", entry["since"])
            event.fields.setdefault("consecutive_failures", entry["count"])
            due = entry["last_sent"] is None or now - _parse(entry["last_sent"]) >= self.reminder
            sent = None
            if due:
                entry["last_sent"] = _now_iso()
                sent = self._send_locked(event)
            state[key] = entry
            self._save("conditions.json", state)
            return sent

    def clear(self, key: str, event: Event | None) -> list[Delivery] | None:
        """A condition ended: send ``event`` once if it was in progress."""
        with self._locked():
            state: dict[str, Any] = self._load("conditions.json", {})
            entry = state.pop(key, None)
            if entry is None:
                return None
            self._save("conditions.json", state)
            if event is None:
                return None
            since = _parse(entry["since"])
            event.fields.setdefault("since", entry["since"])
            event.fields.setdefault(
                "down_seconds", int((datetime.now(UTC) - since).total_seconds())
            )
            event.fields.setdefault("consecutive_failures", entry["count"])
            return self._send_locked(event)

    def queued(self) -> int:
        """How many deliveries wait in the outbox."""
        with self._locked():
            return len(self._load("outbox.json", []))

    def active(self) -> dict[str, Any]:
        return self.read_state("conditions.json")

    def read_state(self, name: str) -> dict[str, Any]:
        with self._locked():
            doc: dict[str, Any] = self._load(name, {})
            return doc

    def update_state(self, name: str, change: Callable[[dict[str, Any]], T]) -> T:
        """Read, change and write back one small JSON state file under the lock."""
        with self._locked():
            doc: dict[str, Any] = self._load(name, {})
            result = change(doc)
            self._save(name, doc)
            return result


def _configured_channels(config: Config) -> list[Channel]:
    """The config's channels; smtplib, ssl and email load only when there are some (every
    backup makes a Notifier, most appliances configure no channel at all)."""
    if not config.alerts.channels():
        return []

    return list(channels_from_config(config.alerts))


def recent_deliveries(state_dir: Path, limit: int = 200) -> list[dict[str, Any]]:
    """The newest deliveries first (for ``status`` and the dashboard)."""
    try:
        lines = (state_dir / "alerts" / "deliveries.jsonl").read_bytes().splitlines()
    except OSError:
        return []
    found: list[dict[str, Any]] = []
    for line in reversed(lines[-limit:]):
        with contextlib.suppress(orjson.JSONDecodeError):
            found.append(orjson.loads(line))
    return found
