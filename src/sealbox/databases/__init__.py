"""Live database dumps and loads: one module per kind behind :class:`base.Database`."""

from __future__ import annotations

from sealbox.config.models import DatabaseConfig
from sealbox.databases.base import Database
from sealbox.databases.mariadb import MariaDB
from sealbox.databases.postgresql import PostgreSQL
from sealbox.databases.sqlite import SQLite

__all__ = ["Database", "database_for"]


def database_for(config: DatabaseConfig, position: int) -> Database:
    """The handler for one ``[[system.databases]]`` entry (``position`` orders restore)."""
    if config.type == "mariadb":
        return MariaDB(config, position)
    if config.type == "postgresql":
        return PostgreSQL(config, position)

    return SQLite(config, position)
