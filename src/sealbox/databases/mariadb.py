"""MariaDB / MySQL: ``mariadb-dump --single-transaction`` (a consistent InnoDB snapshot while the
appliance keeps writing), loaded back with the ``mariadb`` client."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import replace as dc_replace

from sealbox.config.models import DatabaseConfig
from sealbox.databases.base import (
    count_rows,
    parse_server_url,
    run_feed,
    run_query,
    start_dump,
    tool,
)
from sealbox.databases.declared import MARIADB_TABLE
from sealbox.databases.restricted import whole_lines
from sealbox.errors import IntegrityError, SourceError
from sealbox.repo.backup import Stream

__all__ = ["MariaDB", "renamed"]

# "GRANT ... TO `u`@`h` IDENTIFIED VIA ... [WITH GRANT OPTION];": the clause would reset the
# credentials of an account that exists on the target server.
# Accounts every server has (and which a load must not touch), and proxy grants (only the
# server's own root holds them).
_BUILT_IN = re.compile(r"[`'](?:root|mysql|mariadb\.sys)[`']@")
_IDENTIFIED = re.compile(r" IDENTIFIED (?:BY|VIA) .*?(?=(?: WITH GRANT OPTION)?;$)")


# A load runs the dump's SQL and nothing else on this host. --sandbox makes the client refuse
# `system`, `\!`, `source`, `tee` and the like; --local-infile=0 refuses LOAD DATA LOCAL INFILE,
# which would read a local file of ours into the server (the Debian client allows it).
_SANDBOX = ("--sandbox", "--local-infile=0")
# The sandbox still lets `\e` (edit) run $EDITOR (default vi, which would then read the rest of
# the dump as keystrokes: `:!cmd`). It gets a program that does nothing and fails.
_NO_EDITOR = {"EDITOR": "/bin/false", "VISUAL": "/bin/false"}
# What the client says when it refused a command of the dump, or when the editor "failed".
_REFUSED = ("Not allowed in the sandbox mode", ": Command '", "disabled the local infile")


class MariaDB:
    def __init__(self, config: DatabaseConfig, position: int) -> None:
        self.config, self.position = config, position
        self.url = parse_server_url(config, ("mysql", "mariadb"), 3306, "root")

    @property
    def label(self) -> str:
        return f"mariadb {self.url.shown()}"

    @property
    def file_name(self) -> str:
        return f"db-{self.position:02d}-mariadb-{self.url.database}.sql"

    def _env(self) -> dict[str, str]:
        return {"MYSQL_PWD": self.url.password} if self.url.password else {}

    def _conn(self) -> list[str]:
        if self.url.socket:
            return ["--protocol=SOCKET", f"--socket={self.url.socket}", f"--user={self.url.user}"]
        return [
            "--protocol=TCP",
            f"--host={self.url.host}",
            f"--port={self.url.port}",
            f"--user={self.url.user}",
        ]

    def check(self) -> None:
        tool(("mariadb-dump", "mysqldump"), "mariadb-client")
        self.exists()

    def dump(self) -> Stream:
        argv = [
            tool(("mariadb-dump", "mysqldump"), "mariadb-client"),
            *self._conn(),
            "--single-transaction",
            "--quick",
            "--routines",
            "--triggers",
            "--events",
            "--hex-blob",
            "--default-character-set=utf8mb4",
            "--databases",
            self.url.database,
        ]
        stream = start_dump(argv, self._env(), self.label, prelude=self.users_sql)
        return dc_replace(stream, name=self.file_name)

    def users_sql(self) -> bytes:
        """The server's accounts, roles and grants (``mariadb-dump --system=users``), so the dump
        loads into a freshly installed server with the accounts its application logs in with.
        ``--insert-ignore`` makes them ``CREATE USER IF NOT EXISTS``; the ``IDENTIFIED ...``
        clauses of the GRANTs are dropped, so an account that exists keeps its credentials;
        the built-in accounts (root, mysql, mariadb.sys) and proxy grants are left out."""
        argv = [
            tool(("mariadb-dump", "mysqldump"), "mariadb-client"),
            *self._conn(),
            "--system=users",
            "--insert-ignore",
            "--skip-comments",
        ]
        try:
            text = run_query(argv, self._env(), self.label)
        except SourceError as exc:  # an account without the privilege: the data still matters
            return f"-- Sealbox: accounts not included ({exc})\n".encode()
        lines = [
            _IDENTIFIED.sub("", line) if line.startswith("GRANT ") else line
            for line in text.splitlines()
            if not _BUILT_IN.search(line) and not line.startswith("GRANT PROXY ")
        ]
        return (
            "-- Sealbox: accounts and grants, created only where missing\n"
            + "\n".join(lines)
            + "\n-- Sealbox: the database (mariadb-dump)\n"
        ).encode()

    def _client(self) -> str:
        return tool(("mariadb", "mysql"), "mariadb-client")

    def writable(self) -> bool:
        """Whether this server is the primary (a cluster's leader): ``read_only`` off and no
        replication configured (``SHOW REPLICA STATUS`` empty). SourceError if it cannot tell."""
        out = run_query(
            [
                self._client(),
                *self._conn(),
                "--batch",
                "--skip-column-names",
                "-e",
                "SELECT @@global.read_only; SHOW REPLICA STATUS",
            ],
            self._env(),
            self.label,
        )
        lines = [line for line in out.splitlines() if line.strip()]
        if not lines or lines[0].strip() not in ("0", "1"):
            raise SourceError(f"{self.label}: unexpected answer to SELECT @@read_only")
        return lines[0].strip() == "0" and len(lines) == 1

    def exists(self) -> bool:
        out = run_query(
            [
                self._client(),
                *self._conn(),
                "--batch",
                "--skip-column-names",
                "-e",
                f"SHOW DATABASES LIKE '{self.url.database}'",
            ],
            self._env(),
            self.label,
        )
        return self.url.database in out.split()

    def load(self, data: Iterable[bytes], replace: bool, dumped_as: str | None = None) -> None:
        """Load a dump with the client sandboxed (see ``_SANDBOX``); a client without
        ``--sandbox`` is refused before anything is dropped. ``dumped_as``: the database the
        dump names (its ``CREATE DATABASE`` and ``USE``), loaded under this handler's name
        instead (the drill's throwaway database)."""
        if dumped_as is not None:
            data = renamed(data, dumped_as, self.url.database)
        client = self._client()
        try:
            run_query([client, *_SANDBOX, "--version"], {}, self.label)
        except SourceError as exc:
            raise SourceError(
                f"{self.label}: {client} does not know --sandbox, so a dump could run commands"
                " on this host: install mariadb-client 10.5.25, 10.6.18, 10.11.8, 11.0.6 or later"
            ) from exc
        if replace:
            run_query(
                [
                    self._client(),
                    *self._conn(),
                    "-e",
                    f"DROP DATABASE IF EXISTS `{self.url.database}`",
                ],
                self._env(),
                self.label,
            )
        run_feed(
            [client, *self._conn(), *_SANDBOX],
            {**self._env(), **_NO_EDITOR},
            data,
            self.label,
            refusals=_REFUSED,
        )

    # The drill's side (:mod:`sealbox.usecases.drill`).

    def _query(self, sql: str) -> str:
        return run_query(
            [self._client(), *self._conn(), "--batch", "--skip-column-names", "-e", sql],
            self._env(),
            self.label,
        )

    def tables(self) -> list[str]:
        """The database's base tables, quoted as mariadb-dump quotes them."""
        # The name passed parse_server_url's plain-name check: no quote can reach the SQL.
        sql = (
            "SELECT CONCAT('`', REPLACE(table_name, '`', '``'), '`')"
            " FROM information_schema.tables WHERE table_schema = '{}'"
            " AND table_type = 'BASE TABLE' ORDER BY 1"
        )
        out = self._query(sql.format(self.url.database))
        return [line for line in out.splitlines() if line]

    def row_counts(self, tables: list[str]) -> dict[str, int]:
        db = f"`{self.url.database}`"
        return count_rows(tables, MARIADB_TABLE, lambda t: f"{db}.{t}", self._query)

    def drop(self) -> None:
        self._query(f"DROP DATABASE IF EXISTS `{self.url.database}`")


def renamed(data: Iterable[bytes], old: str, new: str) -> Iterator[bytes]:
    """A mariadb-dump of database ``old`` (``--databases``) that creates and uses ``new``
    instead. Its ``CREATE DATABASE`` and ``USE`` lines are rewritten; a dump that switches to
    any other database is refused (IntegrityError) before that line reaches the server."""
    create = re.compile(
        rb"^(CREATE DATABASE (?:/\*!32312 IF NOT EXISTS\*/ )?)`" + re.escape(old.encode()) + rb"`"
    )
    use = b"USE `" + old.encode() + b"`;"
    seen_use = False
    for block in whole_lines(data):
        out = []
        for line in block.split(b"\n"):
            if line.startswith(b"CREATE DATABASE "):
                line, count = create.subn(rb"\1`" + new.encode() + b"`", line)
                if not count:
                    raise IntegrityError(f"the dump creates a database other than {old}")
            elif line.startswith(b"USE "):
                if line != use:
                    raise IntegrityError(f"the dump switches to a database other than {old}")
                line, seen_use = b"USE `" + new.encode() + b"`;", True
            out.append(line)
        yield b"\n".join(out)
    if not seen_use:
        raise IntegrityError(f"the dump never selects its database {old} (not a dump of it?)")
