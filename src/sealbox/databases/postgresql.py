"""PostgreSQL: ``pg_dump`` (one consistent snapshot while the appliance keeps writing), loaded back
with ``psql`` into a database made with ``createdb``."""

from __future__ import annotations

from collections.abc import Iterable
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
from sealbox.databases.declared import PG_TABLE
from sealbox.databases.restricted import new_key, require_restrict, restricted_script
from sealbox.errors import SourceError
from sealbox.repo.backup import Stream

__all__ = ["PostgreSQL"]

# What psql says when restricted mode refused a meta-command of the dump.
_REFUSED = ("backslash commands are restricted", "\\unrestrict: wrong key")

# Server-side quoting (format %I, %L): no role name or password is pasted into SQL by Python.
# Roles pg_* and the bootstrap superuser (oid 10) exist on every server and are left alone.
_ROLES = """SELECT format(
 'DO $sealbox$ BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = %L) THEN'
 ' CREATE ROLE %I WITH %s %s %s %s %s %s %s CONNECTION LIMIT %s%s; END IF; END $sealbox$;',
 rolname, rolname,
 CASE WHEN rolsuper THEN 'SUPERUSER' ELSE 'NOSUPERUSER' END,
 CASE WHEN rolinherit THEN 'INHERIT' ELSE 'NOINHERIT' END,
 CASE WHEN rolcreaterole THEN 'CREATEROLE' ELSE 'NOCREATEROLE' END,
 CASE WHEN rolcreatedb THEN 'CREATEDB' ELSE 'NOCREATEDB' END,
 CASE WHEN rolcanlogin THEN 'LOGIN' ELSE 'NOLOGIN' END,
 CASE WHEN rolreplication THEN 'REPLICATION' ELSE 'NOREPLICATION' END,
 CASE WHEN rolbypassrls THEN 'BYPASSRLS' ELSE 'NOBYPASSRLS' END,
 rolconnlimit,
 CASE WHEN rolpassword IS NOT NULL THEN format(' PASSWORD %L', rolpassword) ELSE '' END)
FROM pg_catalog.{table} WHERE rolname !~ '^pg_' AND oid <> 10 ORDER BY rolname"""

_MEMBERS = """SELECT format(
 'DO $sealbox$ BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_auth_members m'
 ' JOIN pg_catalog.pg_roles r ON r.oid = m.roleid JOIN pg_catalog.pg_roles u ON u.oid = m.member'
 ' WHERE r.rolname = %L AND u.rolname = %L) THEN GRANT %I TO %I; END IF; END $sealbox$;',
 r.rolname, u.rolname, r.rolname, u.rolname)
FROM pg_catalog.pg_auth_members m
JOIN pg_catalog.pg_roles r ON r.oid = m.roleid
JOIN pg_catalog.pg_roles u ON u.oid = m.member
WHERE r.rolname !~ '^pg_' AND u.rolname !~ '^pg_' AND u.oid <> 10
ORDER BY r.rolname, u.rolname"""


class PostgreSQL:
    def __init__(self, config: DatabaseConfig, position: int) -> None:
        self.config, self.position = config, position
        self.url = parse_server_url(config, ("postgresql", "postgres"), 5432, "postgres")

    @property
    def label(self) -> str:
        return f"postgresql {self.url.shown()}"

    @property
    def file_name(self) -> str:
        return f"db-{self.position:02d}-postgresql-{self.url.database}.sql"

    def _env(self) -> dict[str, str]:
        return {"PGPASSWORD": self.url.password} if self.url.password else {}

    def _conn(self) -> list[str]:
        return [
            f"--host={self.url.socket or self.url.host}",  # a directory: its Unix socket
            f"--port={self.url.port}",
            f"--username={self.url.user}",
            "--no-password",
        ]

    def check(self) -> None:
        tool(("pg_dump",), "postgresql-client")
        self.exists()

    def dump(self) -> Stream:
        argv = [
            tool(("pg_dump",), "postgresql-client"),
            *self._conn(),
            "--format=plain",
            f"--dbname={self.url.database}",
        ]
        stream = start_dump(argv, self._env(), self.label, prelude=self.roles_sql)
        return dc_replace(stream, name=self.file_name)

    def roles_sql(self) -> bytes:
        """The server's roles and memberships as SQL that creates only what is missing, so the
        dump loads into a freshly installed server (its objects are owned by and granted to
        these roles) and never alters a role that exists there. Passwords (SCRAM verifiers)
        come along when the dump user may read ``pg_authid``."""
        psql = [
            tool(("psql",), "postgresql-client"),
            *self._conn(),
            f"--dbname={self.url.database}",
        ]
        psql.append("-tAc")
        try:
            roles = run_query([*psql, _ROLES.format(table="pg_authid")], self._env(), self.label)
            note = ""
        except SourceError:  # not a superuser: the roles without their passwords
            roles = run_query(
                [*psql, _ROLES.format(table="pg_roles").replace("rolpassword", "NULL::text")],
                self._env(),
                self.label,
            )
            note = "-- role passwords not included: the dump user cannot read pg_authid\n"
        members = run_query([*psql, _MEMBERS], self._env(), self.label)
        return (
            "-- Sealbox: roles and memberships, created only where missing\n"
            + note
            + roles
            + members
            + "-- Sealbox: the database (pg_dump)\n"
        ).encode()

    def writable(self) -> bool:
        """Whether this server is the primary (a cluster's leader): ``pg_is_in_recovery()`` is
        false on a primary and true on a standby. SourceError if it cannot tell."""
        out = run_query(
            [
                tool(("psql",), "postgresql-client"),
                *self._conn(),
                f"--dbname={self.url.database}",
                "-tAc",
                "SELECT pg_is_in_recovery()",
            ],
            self._env(),
            self.label,
        )
        answer = out.strip()
        if answer not in ("t", "f"):
            raise SourceError(f"{self.label}: unexpected answer to pg_is_in_recovery()")
        return answer == "f"

    def exists(self) -> bool:
        out = run_query(
            [
                tool(("psql",), "postgresql-client"),
                *self._conn(),
                "--dbname=postgres",
                "-tAc",
                # The name passed parse_server_url's plain-name check: no quote can reach the SQL.
                f"SELECT 1 FROM pg_database WHERE datname = '{self.url.database}'",  # noqa: S608
            ],
            self._env(),
            self.label,
        )
        return out.strip() == "1"

    def load(self, data: Iterable[bytes], replace: bool) -> None:
        """Load a dump into a new database, psql restricted (:mod:`.restricted`): the dump's SQL
        runs, none of its meta-commands. An old psql is refused before anything is dropped."""
        psql = tool(("psql",), "postgresql-client")
        require_restrict(run_query([psql, "--version"], {}, self.label), psql)
        if replace:
            run_query(
                [
                    tool(("dropdb",), "postgresql-client"),
                    *self._conn(),
                    "--if-exists",
                    self.url.database,
                ],
                self._env(),
                self.label,
            )
        run_query(
            [tool(("createdb",), "postgresql-client"), *self._conn(), self.url.database],
            self._env(),
            self.label,
        )
        run_feed(
            [
                psql,
                *self._conn(),
                "--no-psqlrc",  # a psqlrc could \set ON_ERROR_STOP off, or worse
                "--quiet",
                "-v",
                "ON_ERROR_STOP=1",
                f"--dbname={self.url.database}",
                "-f",
                "-",
            ],
            self._env(),
            restricted_script(data, new_key()),
            self.label,
            refusals=_REFUSED,
        )

    # The drill's side (:mod:`sealbox.usecases.drill`): what a loaded database holds, and dropping
    # the throwaway database afterwards.

    def _query(self, sql: str) -> str:
        psql = tool(("psql",), "postgresql-client")
        return run_query(
            [psql, *self._conn(), "--no-psqlrc", f"--dbname={self.url.database}", "-tAXc", sql],
            self._env(),
            self.label,
        )

    def tables(self) -> list[str]:
        """The database's tables (ordinary and partitioned), quoted as pg_dump quotes them."""
        out = self._query(
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_catalog.pg_tables"
            " WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
        )
        return [line for line in out.splitlines() if line]

    def row_counts(self, tables: list[str]) -> dict[str, int]:
        """Rows per table, each table's own (``ONLY``: a parent's count leaves out its
        partitions and children, as the dump's COPY does). ``tables`` must be names that
        :data:`sealbox.databases.declared.PG_TABLE` matches whole."""
        return count_rows(tables, PG_TABLE, lambda t: f"ONLY {t}", self._query)

    def drop(self) -> None:
        run_query(
            [
                tool(("dropdb",), "postgresql-client"),
                *self._conn(),
                "--if-exists",
                "--force",
                self.url.database,
            ],
            self._env(),
            self.label,
        )
