"""Scratch database servers for drills: a server the operator names (``--scratch URL``), or a
temporary instance started here in a private directory and thrown away afterwards.

A drill loads each dump into a *throwaway database* (``sealbox_drill_<random>``) that it creates
and drops. A temporary instance is started from the server packages installed on the drill host
(PostgreSQL's ``initdb``/``postgres``, MariaDB's ``mariadb-install-db``/``mariadbd``) with no
network listener: a Unix socket in a 0700 directory owned by the package's system account
(``postgres``, ``mysql``), which the server runs as (never root, never the drill's own user, who
can read the drill's key); it dies with the drill (``PR_SET_PDEATHSIG``) and its directory is
removed when it stops. On a ``--scratch`` server the dumps' roles and accounts sections create
the appliance's roles and accounts there too (a dump is loaded as it would be on a rebuilt
appliance): give the drill a server of its own.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from sealbox.errors import ConfigError, SourceError
from sealbox.util.childenv import minimal_env
from sealbox.util.redact import ambiguous_userinfo, mask_url

__all__ = ["SCRATCH_TYPES", "Scratch", "parse_scratch", "temporary_server"]

SCRATCH_TYPES = {"postgresql": "postgresql", "postgres": "postgresql", "mysql": "mariadb"}
SCRATCH_TYPES["mariadb"] = "mariadb"
START_SECONDS = 60
PG_PORT = 5432  # only names the socket file: the server has no network listener
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Scratch:
    """A server to load dumps into: its type and base URL (no database in it)."""

    type: str  # "postgresql" or "mariadb"
    base: str  # scheme://user[:password]@host:port
    query: str = ""  # ?host=DIR / ?socket=PATH: a temporary server's Unix socket

    def url(self, database: str) -> str:
        return f"{self.base}/{database}{self.query}"

    @property
    def shown(self) -> str:
        return "a temporary server" if self.query else mask_url(self.base)


def parse_scratch(text: str) -> Scratch:
    """``postgresql://user@host:port`` or ``mysql://user@host:port`` (no database: the drill
    makes its own)."""
    shown = mask_url(text)
    if ambiguous_userinfo(text):
        raise ConfigError(f"scratch server {shown!r}: percent-encode '@', '/', '?' or '#'")
    parts = urlsplit(text)
    kind = SCRATCH_TYPES.get(parts.scheme)
    if kind is None or not parts.netloc:
        raise ConfigError(
            f"scratch server {shown!r}: expected postgresql://user@host:port or"
            " mysql://user@host:port"
        )
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise ConfigError(
            f"scratch server {shown!r}: give the server only (the drill creates and drops its"
            " own throwaway databases)"
        )
    return Scratch(kind, f"{parts.scheme}://{parts.netloc}")


def _binary(names: list[str], package: str) -> str:
    for name in names:
        found = shutil.which(name) or next(iter(sorted(glob.glob(name), reverse=True)), None)
        if found and os.access(found, os.X_OK):
            return found
    raise SourceError(
        f"no scratch server: install {package} on the drill host, or give --scratch URL"
    )


def _account(name: str) -> tuple[int, int]:
    """The system account the server runs as: never the drill's own user, who can read the
    drill's key (a dump runs with the server's rights while it loads)."""
    if os.geteuid() != 0:
        raise SourceError(
            "a temporary scratch server runs as its package's system account, never as the"
            " drill's own user: run the drill as root, or give --scratch URL"
        )
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid


def _parent_bound() -> None:
    """In the server's process (after its user is set): die with the drill (PR_SET_PDEATHSIG),
    so a drill killed or hung up on never leaves a server running."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _child(who: tuple[int, int] | None, out: IO[bytes]) -> dict[str, Any]:
    """How a server's tools and the server itself are started: as ``who`` (no supplementary
    groups), nothing of ours in their environment, their output into the log."""
    user, group = who if who else (None, None)
    return {
        "stdin": subprocess.DEVNULL,
        "stdout": out,
        "stderr": out,
        "env": minimal_env(),
        "user": user,
        "group": group,
        "extra_groups": [] if who else None,
    }


def _run(argv: list[str], who: tuple[int, int] | None, what: str, log: Path) -> None:
    try:
        with open(log, "ab") as out:
            done = subprocess.run(argv, timeout=300, check=False, **_child(who, out))
    except (OSError, subprocess.SubprocessError) as exc:
        raise SourceError(f"{what}: {exc}") from exc
    if done.returncode != 0:
        raise SourceError(f"{what}: {_last_line(log)}")


def _last_line(log: Path) -> str:
    try:
        lines = log.read_bytes()[-4096:].decode(errors="replace").strip().splitlines()
    except OSError:
        lines = []
    return lines[-1][:300] if lines else "failed"


@contextlib.contextmanager
def _server(
    argv: list[str],
    who: tuple[int, int] | None,
    ready: Path,
    scratch: Scratch,
    what: str,
    log: Path,
) -> Iterator[Scratch]:
    """Run the server until the ``with`` ends; ready once its Unix socket exists (in a 0700
    directory of its own account: nothing else can have made it). Its output goes to ``log``
    (a pipe nobody reads would fill and stall it)."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, preexec_fn=_parent_bound, **_child(who, out))
    try:
        deadline = time.monotonic() + START_SECONDS
        while not ready.exists():
            if proc.poll() is not None:
                raise SourceError(f"{what} did not start: {_last_line(log)}")
            if time.monotonic() > deadline:
                raise SourceError(f"{what} did not start within {START_SECONDS} s")
            time.sleep(0.1)
        yield scratch
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def temporary_server(kind: str) -> Iterator[Scratch]:
    """Start a throwaway ``kind`` server (``postgresql`` or ``mariadb``) for the length of the
    ``with``: no network listener (a Unix socket in a 0700 directory owned by the server's system
    account, so no other local user can reach it or stand in for it), its data removed after.
    SourceError when the drill host has no such server installed, or the drill is not root."""
    if kind not in ("postgresql", "mariadb"):
        raise ConfigError(f"no scratch server for {kind} databases")
    who = _account("postgres" if kind == "postgresql" else "mysql")
    home = Path(tempfile.mkdtemp(prefix=f"sealbox-scratch-{kind}-"))
    try:
        os.chown(home, *who)
        if kind == "postgresql":
            with _postgresql(home, who) as scratch:
                yield scratch
        else:
            with _mariadb(home, who) as scratch:
                yield scratch
    finally:
        shutil.rmtree(home, ignore_errors=True)


@contextlib.contextmanager
def _postgresql(home: Path, who: tuple[int, int]) -> Iterator[Scratch]:
    initdb = _binary(["initdb", "/usr/lib/postgresql/*/bin/initdb"], "postgresql")
    postgres = str(Path(initdb).with_name("postgres"))
    data = home / "data"
    what = "the scratch PostgreSQL server"
    log = home / "server.log"
    _run(
        [initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"],
        who,
        what,
        log,
    )
    argv = [postgres, "-D", str(data), "-p", str(PG_PORT), "-k", str(home)]
    argv += ["-c", "listen_addresses=", "-c", "fsync=off", "-c", "unix_socket_permissions=0700"]
    scratch = Scratch("postgresql", f"postgresql://postgres@localhost:{PG_PORT}", f"?host={home}")
    with _server(argv, who, home / f".s.PGSQL.{PG_PORT}", scratch, what, log) as s:
        yield s


@contextlib.contextmanager
def _mariadb(home: Path, who: tuple[int, int]) -> Iterator[Scratch]:
    install = _binary(["mariadb-install-db", "mysql_install_db"], "mariadb-server")
    server = _binary(
        ["mariadbd", "/usr/sbin/mariadbd", "mysqld", "/usr/sbin/mysqld"], "mariadb-server"
    )
    data = home / "data"
    data.mkdir(mode=0o700)
    os.chown(data, *who)
    user = pwd.getpwuid(who[0]).pw_name
    what = "the scratch MariaDB server"
    log = home / "server.log"
    _run(
        [
            install,
            "--no-defaults",
            f"--datadir={data}",
            f"--user={user}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ],
        None,  # the installer drops to --user itself
        what,
        log,
    )
    socket_path = home / "mariadb.sock"
    argv = [
        server,
        "--no-defaults",
        f"--datadir={data}",
        f"--socket={socket_path}",
        f"--pid-file={home / 'mariadb.pid'}",
        "--skip-networking",
        "--skip-log-bin",
        "--innodb-flush-log-at-trx-commit=0",
        f"--user={user}",
    ]
    scratch = Scratch("mariadb", "mysql://root@localhost", f"?socket={socket_path}")
    # Started as its account (not root with --user): PR_SET_PDEATHSIG would not survive the
    # server's own change of user.
    with _server(argv, who, socket_path, scratch, what, log) as s:
        yield s
