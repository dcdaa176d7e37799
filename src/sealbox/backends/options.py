"""The options every destination table has; each backend module adds its own in a subclass.

A ``[destinations.NAME]`` table is validated by the options model of the backend its URL's scheme
names (``config.models.DestinationConfig`` is the discriminated union of these models), so an
option that does not apply to that backend is refused by name instead of being ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sealbox.backends.local import check_local_url

__all__ = [
    "AgentOptions",
    "DestinationOptions",
    "LocalOptions",
    "MemoryOptions",
    "S3Options",
    "SFTPOptions",
]


class DestinationOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    # The URL the sample config shows for this kind of destination (None: not in the sample).
    EXAMPLE_URL: ClassVar[str | None] = None

    url: str = Field(
        description=(
            "Where backups go: file:///mnt/backup (a mounted CIFS/NFS share),"
            " sftp://user@host/path, s3://bucket/prefix?endpoint=..., agent+https://host:port/ns."
        ),
        examples=["file:///mnt/pam-backup"],
    )
    allow_on_appliance: bool = Field(
        default=False,
        description=(
            "Allow a destination on the appliance itself (same filesystem or device). Only for"
            " tests and demos: every run warns."
        ),
        examples=[False],
    )


# Each backend's own options (one class per backend module). They live here, not in the
# backend modules, so that opening a backend from the plumbing (`sealbox repo ...`, which reads
# no config) does not import pydantic: measured, that added about 0.15 s to every such command.


class LocalOptions(DestinationOptions):
    """A directory: a mounted CIFS/NFS share, or a local disk for tests and demos."""

    EXAMPLE_URL = "file:///mnt/pam-backup"

    @field_validator("url")
    @classmethod
    def _no_host(cls, value: str) -> str:
        check_local_url(value)
        return value


class MemoryOptions(DestinationOptions):
    """An in-process store (tests): nothing survives the process."""


class S3Options(DestinationOptions):
    """An S3-compatible object store (AWS, MinIO, Ceph, SeaweedFS)."""

    EXAMPLE_URL = "s3://pam-backup/appliance?endpoint=https://s3.example.net"

    access_key_id: str | None = Field(
        default=None,
        description="S3 access key id (s3:// destinations; the plumbing reads AWS_ACCESS_KEY_ID).",
        examples=[None],
    )
    secret_key_file: Path | None = Field(
        default=None,
        description="File holding the S3 secret access key.",
        examples=[None],
    )
    object_lock_days: int | None = Field(
        default=None,
        ge=1,
        description=(
            "S3 Object Lock: keep every object (but locks) undeletable for this many days"
            " (COMPLIANCE mode; the bucket must be created with Object Lock)."
        ),
        examples=[None],
    )
    quota_bytes: int | None = Field(
        default=None,
        ge=1,
        description="The space Sealbox may use at an S3 destination (object stores report no free space).",
        examples=[None],
    )


class SFTPOptions(DestinationOptions):
    """A directory on an SSH server, over SFTP; the server's host key is always checked."""

    EXAMPLE_URL = "sftp://sealbox@backup.example.net/srv/pam-backup"

    ssh_key_file: Path | None = Field(
        default=None,
        description="Private key for sftp:// destinations (the plumbing reads SEALBOX_SSH_KEY).",
        examples=[None],
    )
    known_hosts_file: Path | None = Field(
        default=None,
        description="known_hosts with the SFTP server's host key; it is always checked.",
        examples=[None],
    )


class AgentOptions(DestinationOptions):
    """The Sealbox agent on a storage server (``sealbox agent serve``)."""

    EXAMPLE_URL = "agent+https://backup.example.net:8443/pam-01"

    token_file: Path | None = Field(
        default=None,
        description="File holding the agent token (agent destinations).",
        examples=["/etc/sealbox/agent.token"],
    )
    ca_file: Path | None = Field(
        default=None,
        description="The agent's CA, or its certificate itself (pinned), for agent+https:// destinations.",
        examples=[None],
    )
    client_cert: Path | None = Field(
        default=None,
        description="Client certificate (PEM) for an agent that requires mutual TLS.",
        examples=[None],
    )
    client_key: Path | None = Field(
        default=None, description="Its private key (PEM).", examples=[None]
    )
