"""The rest of the demo appliance: settings, software, audit logs and an application database."""

from __future__ import annotations

import os
import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

__all__ = [
    "create_recordings",
    "create_system",
    "live_recording",
    "next_day_recordings",
    "next_day_system",
    "system_paths",
]

_EVENTS = [
    "login",
    "logout",
    "checkout",
    "checkin",
    "session-start",
    "session-end",
    "approve",
    "rotate",
]
_USERS = ["alice", "bob", "carol", "dave", "erin", "frank"]


def system_paths(root: Path) -> list[Path]:
    base = root / "appliance"
    return [base / "etc", base / "opt", base / "var" / "log"]


def _audit_lines(rng: random.Random, start: datetime, count: int) -> str:
    lines = []
    for n in range(count):
        when = start + timedelta(seconds=n * 7)
        lines.append(
            f"{when:%Y-%m-%dT%H:%M:%SZ} pam-01 audit[{1000 + n % 50}]: event={rng.choice(_EVENTS)}"
            f" user={rng.choice(_USERS)} target=srv-{rng.randrange(400):03d}.corp.example"
            f" result={'ok' if rng.random() > 0.03 else 'denied'} session={rng.getrandbits(64):016x}\n"
        )
    return "".join(lines)


def create_system(root: Path, seed: int = 11) -> dict[str, int]:
    """Settings, software, audit logs and ``var/lib/pam/app.db``; returns file counts."""
    rng = random.Random(seed)
    base = root / "appliance"
    etc, opt, log, lib = (
        base / "etc" / "pam",
        base / "opt" / "pam",
        base / "var" / "log" / "pam",
        base / "var" / "lib" / "pam",
    )
    for directory in (etc / "policies", opt / "bin", opt / "lib", log, lib):
        directory.mkdir(parents=True, exist_ok=True)
    (etc / "pam.conf").write_text(
        "[server]\nlisten = 0.0.0.0:443\nworkers = 8\n[vault]\nbackend = sqlite\n"
    )
    for n in range(120):
        (etc / "policies" / f"policy-{n:03d}.yaml").write_text(
            f"name: policy-{n}\napprovers: [{rng.choice(_USERS)}, {rng.choice(_USERS)}]\n"
            f"max_session_minutes: {rng.choice([30, 60, 120, 480])}\nrecord: true\n"
        )
    (opt / "VERSION").write_text("pam-appliance 7.4.2\n")
    for n in range(40):
        (opt / "lib" / f"module-{n:02d}.so").write_bytes(
            rng.randbytes(rng.randrange(20_000, 200_000))
        )
    (opt / "bin" / "pamctl").write_text("#!/bin/sh\necho pamctl 7.4.2\n")
    (opt / "bin" / "pamctl").chmod(0o755)
    start = datetime.now(UTC) - timedelta(days=30)
    for name in ("audit.log", "proxy.log", "access.log"):
        (log / name).write_text(_audit_lines(rng, start, 20_000))
    with sqlite3.connect(lib / "app.db") as db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS sessions (id INTEGER PRIMARY KEY, user TEXT, target TEXT, started TEXT)"
        )
        db.executemany(
            "INSERT INTO sessions (user, target, started) VALUES (?, ?, ?)",
            [
                (
                    rng.choice(_USERS),
                    f"srv-{rng.randrange(400):03d}",
                    f"{start + timedelta(minutes=n):%F %T}",
                )
                for n in range(5000)
            ],
        )
    return {"settings": 121, "software": 42, "logs": 3}


def next_day_system(root: Path) -> None:
    """A day of activity: logs grow, a policy changes, sessions are recorded."""
    rng = random.Random()
    log = root / "appliance" / "var" / "log" / "pam"
    now = datetime.now(UTC)
    for name in ("audit.log", "proxy.log", "access.log"):
        with open(log / name, "a") as handle:
            handle.write(_audit_lines(rng, now, 700))
    policy = root / "appliance" / "etc" / "pam" / "policies" / "policy-007.yaml"
    policy.write_text(policy.read_text() + f"# changed {now:%F}\n")
    with sqlite3.connect(root / "appliance" / "var" / "lib" / "pam" / "app.db") as db:
        db.executemany(
            "INSERT INTO sessions (user, target, started) VALUES (?, ?, ?)",
            [
                (rng.choice(_USERS), f"srv-{rng.randrange(400):03d}", f"{now:%F %T}")
                for _ in range(150)
            ],
        )


def create_recordings(root: Path, count: int = 24, seed: int = 5) -> Path:
    """Finished session recordings, by date, with a sidecar for some; returns the directory."""
    rng = random.Random(seed)
    base = root / "appliance" / "recordings"
    start = datetime.now(UTC) - timedelta(days=3)
    for n in range(count):
        when = start + timedelta(hours=3 * n)
        _recording(base, when, rng, n)
    return base


def _recording(base: Path, when: datetime, rng: random.Random, n: int) -> Path:
    directory = base / f"{when:%Y}" / f"{when:%m}" / f"{when:%d}"
    directory.mkdir(parents=True, exist_ok=True)
    user, target = rng.choice(_USERS), f"srv-{rng.randrange(400):03d}"
    path = directory / f"{user}_{target}_sess-{when:%Y%m%d%H%M}-{n:03d}.rec"
    path.write_bytes(rng.randbytes(rng.randrange(100_000, 400_000)))
    if n % 4 == 0:
        sidecar = path.with_name(path.name + ".json")
        sidecar.write_text(
            f'{{"user": "{user}", "target": "{target}.corp.example", "ended": "{when:%Y-%m-%dT%H:%M:%SZ}"}}'
        )
    stamp = when.timestamp()
    os.utime(path, (stamp, stamp))
    return path


def live_recording(root: Path) -> tuple[Path, object]:
    """A recording still being written: returns its path and the open handle (close it to finish)."""
    now = datetime.now(UTC)
    directory = root / "appliance" / "recordings" / f"{now:%Y}" / f"{now:%m}" / f"{now:%d}"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"alice_srv-042_sess-live-{now:%H%M%S}.rec"
    handle = open(path, "ab")  # noqa: SIM115 - held open on purpose, as a recorder would
    handle.write(b"\0" * 65536)
    handle.flush()
    return path, handle


def next_day_recordings(root: Path, count: int = 6) -> None:
    rng = random.Random()
    base = root / "appliance" / "recordings"
    now = datetime.now(UTC) - timedelta(hours=2)
    for n in range(count):
        _recording(base, now + timedelta(minutes=10 * n), rng, 500 + rng.randrange(10_000))
