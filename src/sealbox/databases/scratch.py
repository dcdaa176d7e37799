"""Scratch database servers for drills: a server the operator names (``--scratch URL``), or a
temporary instance started here in a private directory and thrown away afterwards.

A drill loads each dump into a *throwaway database* (``sealbox_drill_<random>``) that it creates
and drops, and never touches another database of the server. A temporary instance is started
from the server packages installed on the drill host (PostgreSQL's ``initdb``/``postgres``,
MariaDB's ``mariadb-install-db``/``mariadbd``), bound to 127.0.0.1 on a free port, with its data
in a 0700 directory that is removed when it stops. Run as root, the server runs as its
package's system user (``postgres``, ``mysql``): neither server runs as root.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from sealbox.errors import ConfigError, SourceError
from sealbox.util.childenv import minimal_env
from sealbox.util.redact import ambiguous_userinfo, mask_url

__all__ = ["SCRATCH_TYPES", "Scratch", "parse_scratch", "temporary_server"]

SCRATCH_TYPES = {"postgresql": "postgresql", "postgres": "postgresql", "mysql": "mariadb"}
SCRATCH_TYPES["mariadb"] = "mariadb"
START_SECONDS = 60


@dataclass(frozen=True)
class Scratch:
    """A server to load dumps into: its type and base URL (no database in it)."""

    type: str  # "postgresql" or "mariadb"
    base: str  # scheme://user[:password]@host:port

    def url(self, database: str) -> str:
        return f"{self.base}/{database}"

    @property
    def shown(self) -> str:
        return mask_url(self.base)


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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _binary(names: list[str], package: str) -> str:
    for name in names:
        found = shutil.which(name) or next(iter(sorted(glob.glob(name), reverse=True)), None)
        if found and os.access(found, os.X_OK):
            return found
    raise SourceError(
        f"no scratch server: install {package} on the drill host, or give --scratch URL"
    )


def _account(name: str) -> tuple[int, int] | None:
    """The unprivileged account the server runs as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid


def _run(argv: list[str], who: tuple[int, int] | None, what: str) -> None:
    user, group = who if who else (None, None)
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            env=minimal_env(),
            user=user,
            group=group,
            extra_groups=[] if who else None,
            timeout=300,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise SourceError(f"{what}: {exc}") from exc
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
        raise SourceError(f"{what}: {lines[-1][:300] if lines else 'failed'}")


@contextlib.contextmanager
def _server(
    argv: list[str], who: tuple[int, int] | None, ready: Scratch, what: str
) -> Iterator[Scratch]:
    user, group = who if who else (None, None)
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=minimal_env(),
        user=user,
        group=group,
        extra_groups=[] if who else None,
    )
    try:
        port = int(urlsplit(ready.base).port or 0)
        deadline = time.monotonic() + START_SECONDS
        while True:
            if proc.poll() is not None:
                assert proc.stderr is not None
                lines = proc.stderr.read().decode(errors="replace").strip().splitlines()
                raise SourceError(f"{what} did not start: {lines[-1][:300] if lines else '?'}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline:
                raise SourceError(f"{what} did not start within {START_SECONDS} s")
            time.sleep(0.2)
        yield ready
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


@contextlib.contextmanager
def temporary_server(kind: str) -> Iterator[Scratch]:
    """Start a throwaway ``kind`` server (``postgresql`` or ``mariadb``) for the length of the
    ``with``; SourceError when the drill host has no such server installed. Its home is made in
    the system's temporary directory (which the server's account can reach; a drill's own
    directories cannot be), 0700 and owned by that account."""
    home = Path(tempfile.mkdtemp(prefix=f"sealbox-scratch-{kind}-"))
    try:
        if kind == "postgresql":
            with _postgresql(home) as scratch:
                yield scratch
        elif kind == "mariadb":
            with _mariadb(home) as scratch:
                yield scratch
        else:
            raise ConfigError(f"no scratch server for {kind} databases")
    finally:
        shutil.rmtree(home, ignore_errors=True)


@contextlib.contextmanager
def _postgresql(home: Path) -> Iterator[Scratch]:
    initdb = _binary(["initdb", "/usr/lib/postgresql/*/bin/initdb"], "postgresql")
    postgres = str(Path(initdb).with_name("postgres"))
    who = _account("postgres")
    data = home / "data"
    data.mkdir(mode=0o700)
    if who:
        os.chown(home, *who)
        os.chown(data, *who)
    what = "the scratch PostgreSQL server"
    _run(
        [initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"],
        who,
        what,
    )
    port = _free_port()
    argv = [postgres, "-D", str(data), "-p", str(port), "-k", str(home)]
    argv += ["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "logging_collector=off"]
    with _server(
        argv, who, Scratch("postgresql", f"postgresql://postgres@127.0.0.1:{port}"), what
    ) as s:
        yield s


@contextlib.contextmanager
def _mariadb(home: Path) -> Iterator[Scratch]:
    install = _binary(["mariadb-install-db", "mysql_install_db"], "mariadb-server")
    server = _binary(
        ["mariadbd", "/usr/sbin/mariadbd", "mysqld", "/usr/sbin/mysqld"], "mariadb-server"
    )
    who = _account("mysql")
    data = home / "data"
    data.mkdir(mode=0o700)
    if who:
        os.chown(home, *who)
        os.chown(data, *who)
    user = pwd.getpwuid(who[0] if who else os.geteuid()).pw_name
    what = "the scratch MariaDB server"
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
    )
    port = _free_port()
    argv = [
        server,
        "--no-defaults",
        f"--datadir={data}",
        f"--socket={home / 'mariadb.sock'}",
        f"--pid-file={home / 'mariadb.pid'}",
        f"--port={port}",
        "--bind-address=127.0.0.1",
        "--skip-log-bin",
        "--innodb-flush-log-at-trx-commit=0",
        f"--user={user}",
    ]
    with _server(argv, None, Scratch("mariadb", f"mysql://root@127.0.0.1:{port}"), what) as s:
        yield s
