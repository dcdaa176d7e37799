"""PostgreSQL: ``pg_dump`` (one consistent snapshot while the appliance keeps writing), loaded back
with ``psql`` into a database made with ``createdb``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace as dc_replace

from sealbox.config.models import DatabaseConfig
from sealbox.databases.base import parse_server_url, run_feed, run_query, start_dump, tool
from sealbox.repo.backup import Stream

__all__ = ["PostgreSQL"]


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
            f"--host={self.url.host}",
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
        return dc_replace(start_dump(argv, self._env(), self.label), name=self.file_name)

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
                tool(("psql",), "postgresql-client"),
                *self._conn(),
                "--quiet",
                "-v",
                "ON_ERROR_STOP=1",
                f"--dbname={self.url.database}",
                "-f",
                "-",
            ],
            self._env(),
            data,
            self.label,
        )
