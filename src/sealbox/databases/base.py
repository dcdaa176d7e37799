"""What every database kind provides, and the subprocess plumbing they share.

A dump is streamed: the dump tool's stdout is read by the backup pipeline (chunked, encrypted,
packed) while the tool runs, so no plaintext dump ever touches the disk. A load feeds the restored
bytes to the client tool's stdin. Passwords go to the tools through their environment variables
(``MYSQL_PWD``, ``PGPASSWORD``), never on a command line that ``ps`` shows; nothing else of
Sealbox's environment reaches them (:func:`sealbox.util.childenv.minimal_env`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from sealbox.config.models import DatabaseConfig
from sealbox.errors import ConfigError, IntegrityError, SourceError
from sealbox.repo.backup import Stream
from sealbox.util.childenv import minimal_env
from sealbox.util.redact import ambiguous_userinfo, mask_url
from sealbox.util.secretfile import read_secret_file

__all__ = [
    "Database",
    "ServerUrl",
    "count_rows",
    "parse_server_url",
    "run_feed",
    "start_dump",
    "tool",
]

_NAME = re.compile(r"^[A-Za-z0-9_$][A-Za-z0-9_$-]{0,63}$")
_AMBIGUOUS = "the password holds '@', '/', '?' or '#': percent-encode it, or use password_file"


class Database(Protocol):
    config: DatabaseConfig
    position: int

    @property
    def label(self) -> str:
        """How people see it: kind, database and server, no password."""
        ...

    @property
    def file_name(self) -> str:
        """The dump's file name in the snapshot (under ``.sealbox/``)."""
        ...

    def check(self) -> None:
        """Fail early (SourceError) if the tool is missing or the server refuses us."""
        ...

    def dump(self) -> Stream: ...

    def exists(self) -> bool: ...

    def load(self, data: Iterable[bytes], replace: bool) -> None: ...


class ServerUrl:
    def __init__(
        self,
        kind: str,
        host: str,
        port: int,
        user: str,
        database: str,
        password: str | None,
        socket: str | None = None,
    ) -> None:
        self.kind, self.host, self.port, self.user, self.database = kind, host, port, user, database
        self.password = password
        self.socket = socket  # a Unix socket (MariaDB) or its directory (PostgreSQL), or None

    def shown(self) -> str:
        where = self.socket or f"{self.host}:{self.port}"
        return f"{self.kind}://{self.user}@{where}/{self.database}"


def parse_server_url(
    config: DatabaseConfig, schemes: tuple[str, ...], default_port: int, default_user: str
) -> ServerUrl:
    # Messages show the URL masked only: it may hold a password, even a mangled one (a '/' in
    # it makes the rest read as the path, so not even the database name is echoed raw).
    shown = mask_url(config.url)
    if ambiguous_userinfo(config.url):
        raise ConfigError(f"database url {shown!r}: {_AMBIGUOUS}")
    parts = urlsplit(config.url)
    if parts.scheme.split("+")[0] not in schemes:
        raise ConfigError(
            f"database url {shown!r}: expected {' or '.join(s + '://' for s in schemes)}"
        )
    database = unquote(parts.path.lstrip("/"))
    if not _NAME.match(database):
        raise ConfigError(f"database url {shown!r}: the path is not a plain database name")
    try:
        port = parts.port
    except ValueError:  # urllib's message quotes the text after ':', maybe part of a password
        raise ConfigError(f"database url {shown!r}: the port is not a number") from None
    password = parts.password
    if config.password_file is not None:
        password = read_secret_file(config.password_file, f"database {database}")
    query = parse_qs(parts.query)
    sockets = query.get("host") or query.get("socket") or []
    socket = sockets[0] if sockets else None
    if socket is not None and not socket.startswith("/"):
        raise ConfigError(
            f"database url {shown!r}: a socket (?host= or ?socket=) is an absolute path"
        )
    return ServerUrl(
        parts.scheme.split("+")[0],
        parts.hostname or "127.0.0.1",
        port or default_port,
        unquote(parts.username or default_user),
        database,
        password,
        socket,
    )


def tool(names: tuple[str, ...], package: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise SourceError(f"{names[0]} not found: install the Debian package {package}")


class _Stderr:
    """Collects a child's stderr (bounded) so its first line can explain a failure."""

    def __init__(self, stream: Any) -> None:
        self.data = b""
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            if len(self.data) < 65536:
                self.data += line

    def lines(self) -> list[str]:
        """Its stderr lines once it ended, without blank lines and rules of dashes."""
        self.thread.join(timeout=5)
        return [
            line.strip()
            for line in self.data.decode(errors="replace").splitlines()
            if line.strip().strip("-")
        ]

    def first_line(self) -> str:
        """The tool's error line (``ERROR ...``, ``psql:...: error: ...`` when there is one)."""
        lines = self.lines()
        errors = [line for line in lines if "ERROR" in line.upper() or "FATAL" in line.upper()]
        return (errors or lines or ["no message"])[0][:300]


def _spawn(
    argv: list[str], env: dict[str, str], what: str, *, stdin: int, stdout: int
) -> tuple[subprocess.Popen[bytes], _Stderr]:
    """Start ``argv`` with ``env`` added; its stderr collected for messages."""
    try:
        proc = subprocess.Popen(
            argv, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, env=minimal_env(env)
        )
    except OSError as exc:
        raise SourceError(f"{what}: cannot start {argv[0]}: {exc.strerror}") from exc
    return proc, _Stderr(proc.stderr)


def start_dump(
    argv: list[str],
    env: dict[str, str],
    what: str,
    prelude: Callable[[], bytes] | None = None,
) -> Stream:
    """A Stream running ``argv`` and reading its stdout; with ``prelude``, those bytes (made when
    the stream opens) come first, then the tool's output spliced behind them in the kernel."""

    def open_() -> tuple[int, Callable[..., None]]:
        head = prelude() if prelude is not None else b""
        joiner: _Joiner | None = None
        if head and (ready := _pipe_holding(head)) is not None:
            # The prelude sits in the pipe already; the tool writes behind it: no extra hop.
            fd, write_end = ready
            try:
                proc, stderr = _spawn(argv, env, what, stdin=subprocess.DEVNULL, stdout=write_end)
            finally:
                os.close(write_end)
        else:
            proc, stderr = _spawn(argv, env, what, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
            assert proc.stdout is not None
            fd = os.dup(proc.stdout.fileno())
            proc.stdout.close()
            if head:  # too big to sit in a pipe: a thread writes it, then splices the tool's
                joiner = _Joiner(head, fd)

        def finish(failed: bool = False) -> None:
            if failed:
                proc.kill()
            code = proc.wait()
            if joiner is not None:
                joiner.close()
            if code != 0 and not failed:
                raise SourceError(f"{what}: dump failed ({stderr.first_line()})")

        return (joiner.read_fd if joiner is not None else fd), finish

    return Stream(name="", open=open_)


def _pipe_holding(head: bytes) -> tuple[int, int] | None:
    """A pipe (read end, write end) already holding ``head``, if it fits without blocking."""
    read_fd, write_fd = os.pipe()
    with contextlib.suppress(OSError):
        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, 1 << 20)
    if len(head) >= fcntl.fcntl(write_fd, fcntl.F_GETPIPE_SZ):
        os.close(read_fd)
        os.close(write_fd)
        return None
    os.write(write_fd, head)
    return read_fd, write_fd


class _Joiner:
    """A pipe that yields ``head`` and then everything read from ``source`` (a tool's stdout),
    moved with splice(2): no copy of the dump passes through Python."""

    def __init__(self, head: bytes, source: int) -> None:
        self.read_fd, self._write_fd = os.pipe()
        self._source = source
        self._thread = threading.Thread(target=self._run, args=(head,), daemon=True)
        self._thread.start()

    def _run(self, head: bytes) -> None:
        try:
            view = memoryview(head)
            while view:
                view = view[os.write(self._write_fd, view) :]
            while os.splice(self._source, self._write_fd, 1 << 20):
                pass
        except OSError:
            pass  # the reader went away (a failed backup): the tool's exit status tells why
        finally:
            os.close(self._write_fd)
            os.close(self._source)

    def close(self) -> None:
        self._thread.join(timeout=30)


def run_feed(
    argv: list[str],
    env: dict[str, str],
    data: Iterable[bytes],
    what: str,
    refusals: tuple[str, ...] = (),
) -> None:
    """Run ``argv`` with ``data`` on its stdin; SourceError with its message if it fails.

    ``refusals`` are the tool's messages for a command it refused to run (sandbox, restricted
    mode): any of them on its stderr makes the load an IntegrityError, even when the tool went on
    and exited 0 (the mariadb client does, after a refused ``\\e``): a genuine dump holds none.
    """
    proc, stderr = _spawn(argv, env, what, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert proc.stdin is not None
    try:
        for chunk in data:
            proc.stdin.write(chunk)
        proc.stdin.close()
    except BrokenPipeError:
        pass  # the tool stopped reading: its exit status and message say why
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    code = proc.wait()
    refused = [line for line in stderr.lines() if any(r in line for r in refusals)]
    if refused:
        raise IntegrityError(
            f"{what}: load stopped: the dump holds a client command, which a load never runs"
            f" (a forged or tampered dump?): {refused[0][:300]}"
        )
    if code != 0:
        raise SourceError(f"{what}: load failed ({stderr.first_line()})")


def run_query(argv: list[str], env: dict[str, str], what: str) -> str:
    try:
        done = subprocess.run(
            argv, capture_output=True, env=minimal_env(env), timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SourceError(f"{what}: {argv[0]} did not answer ({exc})") from exc
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        raise SourceError(f"{what}: {lines[0][:300] if lines else 'failed'}")
    return done.stdout.decode(errors="replace")


COUNT_BATCH = 200  # tables per counting query


def count_rows(
    tables: Sequence[str],
    shape: re.Pattern[str],
    source: Callable[[str], str],
    query: Callable[[str], str],
) -> dict[str, int]:
    """Rows per table with one ``UNION ALL`` query per batch; ``source`` turns a table name into
    what follows ``FROM``. Every name must be one whole identifier that ``shape`` matches: the
    names come from a dump, and are pasted into SQL."""
    for table in tables:
        if not shape.fullmatch(table):
            raise ValueError(f"not a plain table name: {table[:80]!r}")
    counts: dict[str, int] = {}
    for start in range(0, len(tables), COUNT_BATCH):
        batch = tables[start : start + COUNT_BATCH]
        sql = " UNION ALL ".join(
            f"SELECT {n}, count(*) FROM {source(t)}"  # noqa: S608 (names checked above)
            for n, t in enumerate(batch)
        )
        for line in query(sql).splitlines():
            number, count = re.split(r"[\t|]", line.strip(), maxsplit=1)
            counts[batch[int(number)]] = int(count)
    return counts
