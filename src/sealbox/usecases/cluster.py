"""Use case: which node of an appliance cluster leads, and the fence every job passes before it
publishes anything (``[cluster]``; docs/design/threat-model.md, "Clusters").

The daemon decides the role (:mod:`sealbox.daemon.leadership`) and hands each run it starts its
fencing token in :data:`TOKEN_ENV`. The run calls :func:`fence` right before its first
publishing write (a secrets backup's signature, a snapshot header, a recordings batch): in lease
mode the token must still be the highest lease counter at the lease destination; in database and
command modes the role is asked again. A run started by hand (no token) is the operator's own
decision and is not fenced.
"""

from __future__ import annotations

import os
import subprocess
from typing import Literal, TypedDict

from sealbox.backends.base import Backend
from sealbox.backends.retry import Retrying
from sealbox.config.models import Config
from sealbox.databases import database_for
from sealbox.databases.mariadb import MariaDB
from sealbox.databases.postgresql import PostgreSQL
from sealbox.destinations import lease
from sealbox.destinations.repos import destination_backend
from sealbox.errors import ConfigError, FencedError, SealboxError, SourceError
from sealbox.util.childenv import minimal_env

__all__ = [
    "TOKEN_ENV",
    "ClusterStatus",
    "Role",
    "command_leads",
    "database_leads",
    "fence",
    "lease_backend",
    "status_without_daemon",
]

TOKEN_ENV = "SEALBOX_CLUSTER_TOKEN"  # noqa: S105 (a fencing counter, not a secret)
Role = Literal["leader", "standby"]
COMMAND_TIMEOUT = 30.0


class ClusterStatus(TypedDict):
    """``cluster`` in ``status --json``, ``daemon.json`` and ``/api/status``."""

    node: str
    role: Role
    leader: str | None  # the node that leads, as far as this node knows
    since: str | None  # when that node took the lead (ISO 8601 UTC, the taker's clock)
    mode: str  # lease | database | command | none
    token: int | None  # the lease counter (the fencing token) in lease mode


def status_without_daemon(config: Config) -> ClusterStatus | None:
    """``cluster`` for ``sealbox status`` when no daemon runs here: this node stands by (it runs
    no scheduled job); in lease mode the leader is the lease's holder at the destination."""
    cluster = config.cluster
    if cluster is None:
        return None
    leader = since = None
    token = None
    if cluster.leader == "lease":
        try:
            backend = lease_backend(config)
            try:
                held = lease.current(backend)
            finally:
                backend.close()
        except SealboxError:
            held = None
        if held is not None:
            leader, since, token = held.node, held.taken, held.counter
    return ClusterStatus(
        node=cluster.node,
        role="standby",
        leader=leader,
        since=since,
        mode=cluster.leader,
        token=token,
    )


def lease_backend(config: Config) -> Backend:
    """The backend of the lease destination (ConfigError without a ``[cluster]`` lease)."""
    name = config.lease_destination
    if name is None or name not in config.destinations:
        raise ConfigError("[cluster]: no lease destination")
    backend = destination_backend(config, name)
    # One quick retry, not a backup's 12 to 24 seconds: a lease look that hangs that long would
    # outlast a renewal period; the next look comes within seconds anyway.
    return Retrying(backend.inner, attempts=2) if isinstance(backend, Retrying) else backend


def database_leads(config: Config) -> bool:
    """Whether ``[cluster.database]`` is writable (the primary). SourceError if it cannot tell."""
    assert config.cluster is not None and config.cluster.database is not None
    db = database_for(config.cluster.database, 0)
    if not isinstance(db, MariaDB | PostgreSQL):
        raise ConfigError("[cluster.database]: use mariadb or postgresql")
    return db.writable()


def command_leads(config: Config) -> bool:
    """Whether ``[cluster] command`` exits 0 (leader); any other status is standby. SourceError
    when it cannot be started or does not finish within 30 seconds."""
    assert config.cluster is not None and config.cluster.command
    argv = config.cluster.command
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=minimal_env({}),
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SourceError(f"[cluster] command {argv[0]}: {exc}") from exc
    return done.returncode == 0


def fence(config: Config) -> None:
    """FencedError when this node no longer leads the cluster; nothing when it does, when there
    is no ``[cluster]``, or when the run was not started by the daemon (no token)."""
    token = os.environ.get(TOKEN_ENV)
    cluster = config.cluster
    if cluster is None or token is None:
        return
    if cluster.leader == "lease":
        backend = lease_backend(config)
        try:
            held = lease.current(backend)
        finally:
            backend.close()
        if held is None or str(held.counter) != token or held.node != cluster.node:
            holder = f"{held.node} holds lease {held.counter}" if held else "no lease is held"
            raise FencedError(
                f"node {cluster.node} lost the cluster lease it ran under ({token}; {holder}):"
                " nothing was published"
            )
        return
    try:
        leads = database_leads(config) if cluster.leader == "database" else command_leads(config)
    except SourceError as exc:
        raise FencedError(
            f"node {cluster.node} cannot confirm it leads ({exc}): nothing was published"
        ) from exc
    if not leads:
        raise FencedError(
            f"node {cluster.node} is no longer the leader ({cluster.leader} says standby):"
            " nothing was published"
        )
