"""The configuration schema (TOML, see INTERFACE.md).

Every field carries a description and an example: :mod:`sealbox.config.sample` renders them as the
commented sample config (``sealbox config sample``) and ``docs/reference/config.md``.
Unknown keys are errors (``extra="forbid"``), so a typo is reported instead of silently ignored.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from sealbox.backends.options import (
    AgentOptions,
    DestinationOptions,
    LocalOptions,
    MemoryOptions,
    S3Options,
    SFTPOptions,
)
from sealbox.backends.registry import check_url, kind_of
from sealbox.crypto import sshsig
from sealbox.errors import SealboxError
from sealbox.schedule import parse_cron, parse_duration

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_cron(value: str) -> str:
    parse_cron(value)
    return value


def _check_duration(value: str | None) -> str | None:
    if value is not None:
        parse_duration(value)
    return value


_M = TypeVar("_M", bound=BaseModel)


def _check_ages(model: _M) -> _M:
    """``delete_after`` may not be shorter than ``keep_at_least`` (both would bind)."""
    least = getattr(model, "keep_at_least", None)
    most = getattr(model, "delete_after", None)
    if least and most and parse_duration(most) < parse_duration(least):
        raise ValueError(f"delete_after ({most}) is shorter than keep_at_least ({least})")
    return model


class ApplianceConfig(_Model):
    name: str = Field(
        description="Name of this appliance; it appears in backup file names and alerts.",
        examples=["pam-01"],
    )
    state_dir: Path = Field(
        default=Path("/var/lib/sealbox"),
        description="Keystore (public key parts and the appliance signing key), caches, run history.",
        examples=["/var/lib/sealbox"],
    )
    var_dir: Path = Field(
        default=Path("/var"),
        description="The directory the 150% sizing rule measures.",
        examples=["/var"],
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        # The name becomes part of file names at the destination: no separators, no dot-dot.
        if not _NAME.match(value):
            raise ValueError(
                "use letters, digits, '.', '_' or '-' (at most 63), starting alphanumeric"
            )
        return value


class KeysConfig(_Model):
    recipients: list[str] = Field(
        default_factory=list,
        description=(
            "Extra age recipients every backup is also encrypted to (operator keys). The master key"
            " from `sealbox keys ceremony` is used automatically; list it here only when the"
            " ceremony was held on another machine."
        ),
        examples=[[]],
    )
    repository_recipients: list[str] = Field(
        default_factory=list,
        description=(
            "Age recipients added to the system and recordings repositories only, never to the"
            " secrets backups: a key that can restore and check the appliance (e.g. the"
            " daemon's `check_identity_file`) but cannot open a single secret."
        ),
        examples=[["age13aqvttdk3ujkyjh9kg2w5an6dmy5mq5a84a4uxk3hfhnugfc9p0sy5p2wh"]],
    )

    @field_validator("recipients", "repository_recipients")
    @classmethod
    def _recipients(cls, value: list[str]) -> list[str]:
        for item in value:
            if not item.startswith("age1") or len(item) < 40:
                raise ValueError(f"{item[:80]!r} is not an age X25519 recipient (age1...)")
        return value


class _UnsupportedDestination(DestinationOptions):
    """A destination table whose URL no backend handles: only its ``url`` is reported (it
    never validates)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        check_url(value)  # raises: no backend handles this URL
        return value


def _destination_kind(value: Any) -> str:
    """The tag of a destination table: the name of the backend its URL's scheme names."""
    url = value.get("url") if isinstance(value, dict) else getattr(value, "url", None)
    if not isinstance(url, str):
        return "file"  # then the file model reports the missing or mistyped url
    kind = kind_of(url)
    return kind.name if kind is not None else "unsupported"


# A [destinations.NAME] table: the options model of the backend its URL names (see
# backends/registry.py), so an option of another backend is refused by name, never ignored.
DestinationConfig = Annotated[
    Annotated[LocalOptions, Tag("file")]
    | Annotated[MemoryOptions, Tag("memory")]
    | Annotated[S3Options, Tag("s3")]
    | Annotated[SFTPOptions, Tag("sftp")]
    | Annotated[AgentOptions, Tag("agent")]
    | Annotated[_UnsupportedDestination, Tag("unsupported")],
    Discriminator(_destination_kind),
]
DESTINATION_TAGS = ("file", "memory", "s3", "sftp", "agent", "unsupported")


class SqlColumns(_Model):
    """Which result column holds which item field; unset fields are left empty."""

    id: str = Field(default="id", description="Unique item id column.", examples=["id"])
    type: str | None = Field(
        default="type",
        description=(
            "Item type column (credential, ssh_key, secret, cloud_key, certificate, other);"
            " values are mapped by `type_map`."
        ),
        examples=["type"],
    )
    name: str = Field(default="name", description="Display name column.", examples=["name"])
    host: str | None = Field(default="host", description="Host column.", examples=["host"])
    url: str | None = Field(default=None, description="URL column.", examples=["url"])
    username: str | None = Field(
        default="username", description="User name column.", examples=["username"]
    )
    tags: str | None = Field(
        default=None, description="Tags column (comma-separated text).", examples=["tags"]
    )
    notes: str | None = Field(default=None, description="Notes column.", examples=["notes"])
    updated: str | None = Field(
        default=None, description="Last-change time column.", examples=["updated_at"]
    )
    secrets: list[str] = Field(
        default_factory=lambda: ["secret"],
        description="Columns holding secret values; each becomes a secret field of the item.",
        examples=[["password", "private_key"]],
    )


class SqlSource(_Model):
    type: Literal["sql"] = Field(description="Read items with an SQL query.", examples=["sql"])
    name: str = Field(
        default="vault", description="Source name, shown in items and errors.", examples=["vault"]
    )
    url: str = Field(
        description=(
            "SQLAlchemy URL: mysql+pymysql://user@host/db, postgresql+psycopg://user@host/db,"
            " sqlite:////path/vault.db. Put the password in `password_file`, not here."
        ),
        examples=["mysql+pymysql://pam@127.0.0.1/vault"],
    )
    password_file: Path | None = Field(
        default=None,
        description="File holding the database password.",
        examples=["/etc/sealbox/vault.pw"],
    )
    query: str = Field(
        description="Query returning one row per item.",
        examples=["SELECT id, type, name, host, username, secret FROM items"],
    )
    watch_query: str | None = Field(
        default=None,
        description="A query returning one value that changes when any secret does (e.g. SELECT MAX(updated_at) FROM items, or a change counter): polled every [secrets] watch_seconds.",
        examples=["SELECT MAX(updated_at) FROM items"],
    )
    columns: SqlColumns = Field(
        default_factory=SqlColumns,
        description="Column mapping (defaults: id, type, name, host, username, secret).",
        examples=[{"secrets": ["secret"]}],
    )
    history_query: str | None = Field(
        default=None,
        description=(
            "Query returning older versions: columns `item_id`, `changed_at` and the secret"
            " columns; ordered by time."
        ),
        examples=["SELECT item_id, changed_at, secret FROM item_history ORDER BY changed_at"],
    )
    type_map: dict[str, str] = Field(
        default_factory=dict,
        description="Map source type values to Sealbox item types.",
        examples=[{"password": "credential", "key": "ssh_key"}],
    )
    id_prefix: str = Field(
        default="", description="Prefix for item ids (to keep sources apart).", examples=[""]
    )
    timeout: float = Field(
        default=60.0, gt=0, description="Seconds before the source is abandoned.", examples=[60]
    )


class KdbxSource(_Model):
    type: Literal["kdbx"] = Field(description="Read a KeePass (KDBX) file.", examples=["kdbx"])
    name: str = Field(default="keepass", description="Source name.", examples=["keepass"])
    path: Path = Field(description="The KDBX file.", examples=["/var/lib/pam/vault.kdbx"])
    password_file: Path | None = Field(
        default=None, description="File holding its password.", examples=["/etc/sealbox/kdbx.pw"]
    )
    keyfile: Path | None = Field(default=None, description="Its key file, if any.", examples=[None])
    id_prefix: str = Field(default="", description="Prefix for item ids.", examples=["kp:"])
    watch_file: Path | None = Field(
        default=None,
        description="A file whose change (mtime, size) means the secrets changed ([secrets] watch_seconds).",
        examples=[None],
    )


class JsonSource(_Model):
    type: Literal["json"] = Field(
        description="Read items from a JSON file in Sealbox's item schema.", examples=["json"]
    )
    name: str = Field(default="json", description="Source name.", examples=["export"])
    path: Path = Field(
        description='The JSON file (a list of items, or {"items": [...]}).',
        examples=["/var/lib/pam/export.json"],
    )
    id_prefix: str = Field(default="", description="Prefix for item ids.", examples=[""])
    watch_file: Path | None = Field(
        default=None,
        description="A file whose change (mtime, size) means the secrets changed ([secrets] watch_seconds).",
        examples=[None],
    )


class CommandSource(_Model):
    type: Literal["command"] = Field(
        description="Run a program that prints items as JSON.", examples=["command"]
    )
    name: str = Field(default="command", description="Source name.", examples=["pam-export"])
    command: list[str] = Field(
        min_length=1,
        description="Program and arguments (no shell).",
        examples=[["/opt/pam/bin/export-secrets", "--json"]],
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Environment variables for the program. It gets only PATH, the locale (LANG, LC_*), TZ"
            " and these: nothing else of Sealbox's environment (agent tokens, S3 keys)."
        ),
        examples=[{"PAM_EXPORT_CONFIG": "/etc/pam/export.toml"}],
    )
    timeout: float = Field(
        default=300.0, gt=0, description="Seconds before the program is killed.", examples=[300]
    )
    id_prefix: str = Field(default="", description="Prefix for item ids.", examples=[""])
    watch_file: Path | None = Field(
        default=None,
        description="A file whose change (mtime, size) means the secrets changed ([secrets] watch_seconds).",
        examples=[None],
    )

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            # execve takes NAME=VALUE strings: an '=' in a name or a NUL anywhere would smuggle
            # another variable in, or fail at start with a less helpful message.
            if not _ENV_NAME.match(name) or "\0" in text:
                raise ValueError(f"{name[:40]!r}: not an environment variable name (A-Z, 0-9, _)")
        return value


SecretSource = Annotated[
    SqlSource | KdbxSource | JsonSource | CommandSource, Field(discriminator="type")
]


class _AgeLimits(_Model):
    """The age limits every retention takes; they win over its count and period rules."""

    keep_at_least: str | None = Field(
        default=None,
        description=(
            "A minimum age: nothing younger is deleted, whatever the other rules say (e.g. 90d;"
            " `forget` says what it kept for it)."
        ),
        examples=[None],
    )
    delete_after: str | None = Field(
        default=None,
        description=(
            "A maximum age, for privacy rules: anything older is deleted even when another rule"
            " would keep it (e.g. 7y; never less than keep_at_least)."
        ),
        examples=[None],
    )

    _ages = field_validator("keep_at_least", "delete_after")(_check_duration)
    _age_order = model_validator(mode="after")(_check_ages)


class SecretsConfig(_AgeLimits):
    destination: str = Field(
        description="Name of a [destinations.NAME] table.", examples=["offsite"]
    )
    schedule: str = Field(
        default="0 * * * *", description="Cron expression for the daemon.", examples=["0 * * * *"]
    )
    keep_last: int | None = Field(
        default=48, ge=1, description="Keep this many newest backups.", examples=[48]
    )
    keep_within: str | None = Field(
        default=None,
        description="Also keep every backup younger than this (e.g. 30d); with keep_last, a backup is kept if either keeps it.",
        examples=["30d"],
    )
    sources: list[SecretSource] = Field(min_length=1, description="Where the secrets come from.")
    watch_seconds: int | None = Field(
        default=None,
        ge=1,
        le=3600,
        description="Poll each source's change marker this often (watch_query, watch_file, a JSON or KDBX file's own change) and back up soon after a change; the schedule stays a floor.",
        examples=[30],
    )
    max_lag: str = Field(
        default="5m",
        description="With watch_seconds: a change is backed up within this long.",
        examples=["5m"],
    )
    min_interval: str = Field(
        default="1m",
        description="With watch_seconds: never two change-triggered backups closer than this.",
        examples=["1m"],
    )

    _cron = field_validator("schedule")(_check_cron)
    _dur = field_validator("keep_within")(_check_duration)
    _lags = field_validator("max_lag", "min_interval")(_check_duration)

    @model_validator(mode="after")
    def _lag_order(self) -> SecretsConfig:
        if parse_duration(self.min_interval) > parse_duration(self.max_lag):
            raise ValueError("min_interval cannot be longer than max_lag")
        return self

    @model_validator(mode="after")
    def _names_unique(self) -> SecretsConfig:
        names = [s.name for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be unique; repeated: {', '.join(dupes)}")
        return self


class Retention(_AgeLimits):
    keep_last: int | None = Field(
        default=None, ge=1, description="Newest N snapshots.", examples=[3]
    )
    keep_hourly: int | None = Field(
        default=None, ge=1, description="One per hour for N hours.", examples=[24]
    )
    keep_daily: int | None = Field(
        default=None, ge=1, description="One per day for N days.", examples=[7]
    )
    keep_weekly: int | None = Field(
        default=None, ge=1, description="One per week for N weeks.", examples=[4]
    )
    keep_monthly: int | None = Field(
        default=None, ge=1, description="One per month for N months.", examples=[12]
    )
    keep_yearly: int | None = Field(
        default=None, ge=1, description="One per year for N years.", examples=[5]
    )
    keep_within: str | None = Field(
        default=None, description="Everything younger than this.", examples=["5y"]
    )

    _dur = field_validator("keep_within")(_check_duration)


class DatabaseConfig(_Model):
    type: Literal["mariadb", "postgresql", "sqlite"] = Field(
        description="Database kind.", examples=["mariadb"]
    )
    url: str = Field(
        description=(
            "mysql://user@host:port/db, postgresql://user@host:port/db, or sqlite:////abs/path.db."
            " Put a password in password_file, not here."
        ),
        examples=["mysql://root@127.0.0.1/pam"],
    )
    password_file: Path | None = Field(
        default=None, description="File holding the password.", examples=[None]
    )


class SystemConfig(_Model):
    destination: str = Field(
        description="Name of a [destinations.NAME] table.", examples=["offsite"]
    )
    schedule: str = Field(
        default="0 5 * * *", description="Cron expression.", examples=["0 5 * * *"]
    )
    paths: list[Path] = Field(
        default_factory=list,
        description="Settings, software and audit paths.",
        examples=[["/etc/pam", "/opt/pam", "/var/log/pam"]],
    )
    exclude: list[str] = Field(
        default_factory=list, description="Glob patterns to leave out.", examples=[["*.tmp"]]
    )
    retention: Retention = Field(
        default_factory=Retention,
        description="Which snapshots `forget` keeps.",
        examples=[{"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 12}],
    )
    compression_level: int = Field(
        default=1,
        ge=1,
        le=19,
        description="zstd level (1 measured best here: the ratio of level 3, 1.8x faster).",
        examples=[1],
    )
    databases: list[DatabaseConfig] = Field(
        default_factory=list, description="Databases dumped live, restored in this order."
    )

    _cron = field_validator("schedule")(_check_cron)


class RecordingsConfig(_Model):
    destination: str = Field(
        description="Name of a [destinations.NAME] table.", examples=["offsite"]
    )
    path: Path = Field(
        description="The session recordings tree.", examples=["/var/lib/pam/recordings"]
    )
    schedule: str = Field(
        default="*/15 * * * *", description="Cron expression.", examples=["*/15 * * * *"]
    )
    retention: Retention = Field(
        default_factory=Retention,
        description="How long recordings are kept (by keep_within; a younger one is never pruned).",
        examples=[{"keep_within": "5y"}],
    )
    settle_seconds: int = Field(
        default=60,
        ge=0,
        description=(
            "A recording is taken only when no process has it open and its size and mtime have"
            " not changed for this many seconds."
        ),
        examples=[60],
    )
    name_pattern: str = Field(
        default=r"(?P<session>[A-Za-z0-9-]{6,})",
        description=(
            "Regular expression on the file name; named groups session, user and target become"
            " the recording's metadata (a sidecar FILE.json overrides them)."
        ),
        examples=[r"(?P<user>[^_]+)_(?P<target>[^_]+)_(?P<session>[^.]+)\.rec"],
    )
    exclude: list[str] = Field(
        default_factory=lambda: ["*.json", "*.tmp", "*.part"],
        description="Glob patterns that are not recordings (sidecars, partial files).",
        examples=[["*.json", "*.tmp", "*.part"]],
    )

    _cron = field_validator("schedule")(_check_cron)

    @field_validator("name_pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        import re

        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from exc
        return value


class DashboardUser(_Model):
    name: str = Field(description="Login name.", examples=["alice"])
    password_hash: str = Field(
        description="argon2 hash of the password, from `sealbox config hash-password`.",
        examples=["$argon2id$v=19$m=65536,t=3,p=4$..."],
    )
    role: Literal["viewer", "operator"] = Field(
        default="viewer",
        description="viewer: read-only; operator: may also start runs.",
        examples=["operator"],
    )

    @field_validator("password_hash")
    @classmethod
    def _argon2(cls, value: str) -> str:
        if not value.startswith("$argon2"):
            raise ValueError("not an argon2 hash: make one with `sealbox config hash-password`")
        return value


class DaemonConfig(_Model):
    listen: str = Field(
        default="127.0.0.1:9740",
        description="Status API, /metrics and dashboard (HOST:PORT).",
        examples=["127.0.0.1:9740"],
    )
    token_file: Path | None = Field(
        default=None,
        description="File holding the API token: needed for run-now (and for everything when"
        " listen is not a loopback address).",
        examples=["/etc/sealbox/daemon.token"],
    )
    tls_cert: Path | None = Field(
        default=None, description="Serve HTTPS with this certificate (PEM).", examples=[None]
    )
    tls_key: Path | None = Field(default=None, description="Its private key.", examples=[None])
    check_schedule: str | None = Field(
        default="0 3 * * 0",
        description='Cron expression for the periodic `sealbox check` ("" to disable).',
        examples=["0 3 * * 0"],
    )
    check_read_data_subset: str | None = Field(
        default=None,
        description="With an operator key: also decrypt this share of the packs, e.g. 5%.",
        examples=["5%"],
    )
    check_identity_file: Path | None = Field(
        default=None,
        description=(
            "An age identity for --read-data-subset: its recipient must be in"
            " keys.repository_recipients, and never the master key or one of keys.recipients"
            " (those open the secrets backups), which `sealbox config check` and the daemon refuse."
        ),
        examples=[None],
    )
    users: list[DashboardUser] = Field(
        default_factory=list,
        description="Dashboard logins (the API token also logs in, as an operator).",
    )
    session_hours: float = Field(
        default=8, gt=0, description="A dashboard login lasts this long.", examples=[8]
    )
    stop_timeout_seconds: float = Field(
        default=30,
        gt=0,
        description="On SIGTERM, how long a running job may take to stop safely before it is killed.",
        examples=[30],
    )
    header_timeout_seconds: float = Field(
        default=10,
        gt=0,
        description="A client has this long, from connecting (TLS included), to send a request's"
        " headers; then it is disconnected.",
        examples=[10],
    )
    max_connections: int = Field(
        default=256, gt=0, description="HTTP connections open at once, in all.", examples=[256]
    )
    max_connections_per_client: int = Field(
        default=16,
        gt=0,
        description="HTTP connections open at once from one client address.",
        examples=[16],
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("use HOST:PORT, e.g. 127.0.0.1:9740")
        return value

    @property
    def on_loopback(self) -> bool:
        """Whether ``listen`` is a loopback address (reads need no token there)."""
        import ipaddress

        host = self.listen.rpartition(":")[0].strip("[]")
        try:
            return host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    @model_validator(mode="after")
    def _https_off_loopback(self) -> DaemonConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        if not self.on_loopback and self.tls_cert is None:
            raise ValueError(
                f"listen {self.listen} is not a loopback address: serve HTTPS (tls_cert, tls_key)"
                " so logins, tokens and the dashboard never cross the network in clear"
            )
        return self

    @field_validator("check_schedule")
    @classmethod
    def _check_cron(cls, value: str | None) -> str | None:
        return _check_cron(value) if value else None


class EmailAlert(_Model):
    host: str = Field(description="SMTP server.", examples=["smtp.example"])
    port: int = Field(default=587, ge=1, le=65535, description="SMTP port.", examples=[587])
    starttls: bool = Field(default=True, description="Upgrade with STARTTLS.", examples=[True])
    tls: bool = Field(default=False, description="Implicit TLS (port 465).", examples=[False])
    username: str | None = Field(default=None, description="SMTP user.", examples=[None])
    password_file: Path | None = Field(
        default=None, description="File holding the SMTP password.", examples=[None]
    )
    from_: str = Field(
        alias="from", description="Sender address.", examples=["sealbox@pam-01.example"]
    )
    to: list[str] = Field(min_length=1, description="Recipients.", examples=[["soc@example.com"]])
    ca_file: Path | None = Field(
        default=None,
        description="CA bundle to verify the server's certificate (default: the system's).",
        examples=[None],
    )
    min_severity: Literal["critical", "error", "warning", "notice", "info"] = Field(
        default="notice",
        description="Send events at least this severe (info adds every successful backup).",
        examples=["notice"],
    )
    timeout_seconds: float = Field(
        default=20, gt=0, description="Connect and send timeout.", examples=[20]
    )

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SyslogAlert(_Model):
    host: str = Field(description="SIEM collector.", examples=["siem.example"])
    port: int = Field(default=6514, ge=1, le=65535, description="Port.", examples=[6514])
    transport: Literal["udp", "tcp", "tls"] = Field(
        default="tls", description="udp, tcp or tls (RFC 5425).", examples=["tls"]
    )
    format: Literal["cef", "leef", "ecs", "ocsf", "plain"] = Field(
        default="cef",
        description="Payload format: CEF, LEEF 2.0, ECS or OCSF JSON, or plain text.",
        examples=["cef"],
    )
    facility: Literal[
        "kern",
        "user",
        "daemon",
        "auth",
        "authpriv",
        "local0",
        "local1",
        "local2",
        "local3",
        "local4",
        "local5",
        "local6",
        "local7",
    ] = Field(default="auth", description="Syslog facility.", examples=["auth"])
    ca_file: Path | None = Field(
        default=None,
        description="CA bundle to verify the collector's certificate (tls; default: the system's).",
        examples=[None],
    )
    client_cert: Path | None = Field(
        default=None, description="Client certificate for mutual TLS (PEM).", examples=[None]
    )
    client_key: Path | None = Field(
        default=None, description="Its private key (PEM).", examples=[None]
    )
    min_severity: Literal["critical", "error", "warning", "notice", "info"] = Field(
        default="info", description="Send events at least this severe.", examples=["info"]
    )
    timeout_seconds: float = Field(
        default=10, gt=0, description="Connect and send timeout (tcp, tls).", examples=[10]
    )


class HttpAlert(_Model):
    """A SIEM's HTTP ingestion API: Splunk's HTTP Event Collector or Elasticsearch's bulk API."""

    url: str = Field(
        description="The collector's base URL (https://splunk.example:8088,"
        " https://es.example:9200).",
        examples=["https://splunk.example:8088"],
    )
    kind: Literal["splunk", "elasticsearch"] = Field(
        description="splunk (POST /services/collector/event) or elasticsearch (POST /_bulk).",
        examples=["splunk"],
    )
    token_file: Path | None = Field(
        default=None,
        description="The HEC token (Authorization: Splunk T) or an Elasticsearch API key"
        " (Authorization: ApiKey K), read at send time.",
        examples=["/etc/sealbox/hec.token"],
    )
    format: Literal["ecs", "ocsf"] = Field(
        default="ecs", description="The event document: ECS or OCSF JSON.", examples=["ecs"]
    )
    index: str | None = Field(
        default=None,
        description="Splunk index (default: the token's), or Elasticsearch index or data"
        " stream (default sealbox-events).",
        examples=[None],
    )
    ca_file: Path | None = Field(
        default=None, description="CA bundle for the collector's certificate.", examples=[None]
    )
    min_severity: Literal["critical", "error", "warning", "notice", "info"] = Field(
        default="info", description="Send events at least this severe.", examples=["info"]
    )
    timeout_seconds: float = Field(
        default=10, gt=0, description="Connect and answer timeout.", examples=[10]
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+(/[^\s]*)?$", value):
            raise ValueError("an http:// or https:// URL")
        return value.rstrip("/")


class AlertsConfig(_Model):
    email: EmailAlert | list[EmailAlert] | None = Field(
        default=None, description="Email channel(s)."
    )
    syslog: SyslogAlert | list[SyslogAlert] | None = Field(
        default=None, description="SIEM channel(s)."
    )
    http: HttpAlert | list[HttpAlert] | None = Field(
        default=None, description="SIEM HTTP ingestion channel(s) (Splunk HEC, Elasticsearch)."
    )
    reminder_hours: float = Field(
        default=24,
        gt=0,
        description="While a condition lasts (destination down, backups failing), remind at most"
        " this often.",
        examples=[24],
    )
    retry_hours: float = Field(
        default=72,
        gt=0,
        description="Keep retrying an undelivered alert this long, then drop it (logged).",
        examples=[72],
    )

    def channels(self) -> list[EmailAlert | SyslogAlert | HttpAlert]:
        found: list[EmailAlert | SyslogAlert | HttpAlert] = []
        for part in (self.email, self.syslog, self.http):
            if isinstance(part, list):
                found += part
            elif part is not None:
                found.append(part)
        return found


_PARITY = re.compile(
    r"^(off|(?P<percent>[0-9]{1,2}(\.[0-9]+)?)%|(?P<k>[0-9]{1,3})\+(?P<m>[0-9]))\Z"
)


def _check_parity(value: str) -> str:
    """The shape of a parity policy (repo.parity.parse_policy reads it; config cannot import the
    repository engine, its sibling): off, 1%-50%, or K+M with 1 <= M <= min(K, 8), K <= 128."""
    match = _PARITY.match(value.strip())
    ok = match is not None
    if match and match["percent"]:
        ok = 1 <= float(match["percent"]) <= 50
    elif match and match["k"]:
        k, m = int(match["k"]), int(match["m"])
        ok = 1 <= m <= min(k, 8) and k <= 128
    if not ok:
        raise ValueError(
            f"parity {value!r}: use a percentage from 1% to 50%, K+M like 32+2, or off"
        )
    return value


class RepositoryConfig(_Model):
    """How the product's repositories store what they hold."""

    parity: str = Field(
        default="6.25%",
        description=(
            "Parity stored beside every repository object, so rot is repaired without any key"
            " (`check --repair`, `agent scrub`): a percentage (one parity share per 100/N data"
            " shares of 4 KiB), K+M (M parity shares per K), or off. Any single damaged 4 KiB"
            " region of an object is repairable at any setting."
        ),
        examples=["6.25%"],
    )

    _parity = field_validator("parity")(_check_parity)


class ProbesConfig(_Model):
    schedule: str = Field(
        default="*/5 * * * *",
        description="Cron expression for the daemon's destination probes.",
        examples=["*/5 * * * *"],
    )
    timeout_seconds: float = Field(
        default=30, gt=0, description="A probe slower than this counts as a failure.", examples=[30]
    )

    _cron = field_validator("schedule")(_check_cron)


CopyKind = Literal["secrets", "system", "recordings"]
COPY_KINDS: tuple[CopyKind, ...] = ("secrets", "system", "recordings")


class CopyConfig(_Model):
    """A second copy of backups at another destination (the 3-2-1 rule)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_: str = Field(
        alias="from", description="The destination copied from.", examples=["offsite"]
    )
    to: str = Field(description="The destination copied to.", examples=["vault-2"])
    kinds: list[CopyKind] = Field(
        default_factory=lambda: list(COPY_KINDS),
        description="What is copied (those of the kinds stored at `from`).",
        examples=[["secrets", "system", "recordings"]],
    )
    schedule: str | None = Field(
        default=None,
        description="Cron expression for the daemon (default: after each backup it copies).",
        examples=[None],
    )
    rate_limit: int | None = Field(
        default=None,
        ge=1024,
        description="Bytes per second the copy may send at most.",
        examples=[None],
    )
    alert_after_hours: int = Field(
        default=26,
        ge=1,
        description="Alert (copy.behind) when the copy has not completed for this long.",
        examples=[26],
    )

    _cron = field_validator("schedule")(lambda v: v if v is None else _check_cron(v))


DrillKind = Literal["system", "recordings"]
DRILL_KINDS: tuple[DrillKind, ...] = ("system", "recordings")


class DrillsConfig(_Model):
    """Restore drills. On the appliance: how long backups may go unproven before an alert. On a
    recovery host (never the appliance): the daemon's drill schedule and what it needs."""

    alert_after_days: int = Field(
        default=35,
        ge=1,
        description="Alert (drill.not_proven) when no drill of a kind passed for this long.",
        examples=[35],
    )
    schedule: str | None = Field(
        default=None,
        description="Cron expression: the recovery host's daemon runs `sealbox drill` then.",
        examples=[None],
    )
    destination: str | None = Field(
        default=None,
        description="The destination drills read (default: [system]'s and [recordings]'s; a"
        " recovery host has neither).",
        examples=[None],
    )
    kinds: list[DrillKind] = Field(
        default_factory=lambda: list(DRILL_KINDS),
        description="What the scheduled drills prove.",
        examples=[["system", "recordings"]],
    )
    identity_file: Path | None = Field(
        default=None,
        description="The key scheduled drills open the repositories with: a repository-only"
        " key (keys.repository_recipients), on the recovery host only.",
        examples=[None],
    )
    scratch: list[str] = Field(
        default_factory=list,
        description="Scratch servers for the dumps (postgresql://user@host:port,"
        " mysql://user@host:port); without one, a temporary server is started.",
        examples=[[]],
    )
    sample: int = Field(
        default=20, ge=1, description="Recordings a recordings drill restores.", examples=[20]
    )
    signers: list[str] = Field(
        default_factory=list,
        description="On the appliance: the drill hosts' receipt keys ('ssh-ed25519 AAAA...', as"
        " `sealbox drill` prints them) whose receipts count; empty: any receipt sealed with the"
        " repository's key.",
        examples=[[]],
    )

    _cron = field_validator("schedule")(lambda v: v if v is None else _check_cron(v))

    @field_validator("signers")
    @classmethod
    def _signer_lines(cls, value: list[str]) -> list[str]:
        for line in value:
            try:
                sshsig.parse_public_key_line(line)
            except SealboxError as exc:
                raise ValueError(str(exc)) from None
        return value


class ClusterConfig(_Model):
    """Appliance clusters: the node that leads runs the scheduled jobs, the others stand by."""

    node: str = Field(
        description="This node's name, unique in the cluster (it appears in the lease and alerts).",
        examples=["pam-01a"],
    )
    leader: Literal["lease", "database", "command"] = Field(
        default="lease",
        description=(
            "How the leader is chosen: `lease` (an object at `lease_destination`, created"
            " exclusively and renewed), `database` (the node whose appliance database is writable),"
            " `command` (a command whose exit status 0 means leader)."
        ),
        examples=["lease"],
    )
    lease_destination: str | None = Field(
        default=None,
        description=(
            "Where the lease lives (a [destinations.NAME]); default: the system backup's, else"
            " the secrets backup's, else the recordings'. Every node must name the same one. In"
            " database and command modes it holds the shared record of which slots ran."
        ),
        examples=[None],
    )
    lease_seconds: int = Field(
        default=60,
        ge=15,
        le=3600,
        description=(
            "A lease not renewed for this long may be taken over (renewed every third of it);"
            " a failover takes at most this plus 20 seconds."
        ),
        examples=[60],
    )
    command: list[str] | None = Field(
        default=None,
        description='With leader = "command": argv run every check; exit status 0 = leader.',
        examples=[None],
    )
    database: DatabaseConfig | None = Field(
        default=None,
        description=(
            'With leader = "database": the appliance database (mariadb or postgresql) whose'
            " writability says leader (MariaDB: not read_only and not a replica; PostgreSQL:"
            " not pg_is_in_recovery())."
        ),
        examples=[None],
        json_schema_extra={"sample_commented": True},
    )
    check_seconds: float = Field(
        default=10,
        gt=0,
        le=600,
        description='With leader = "database" or "command": how often the role is checked.',
        examples=[10],
    )

    @field_validator("node")
    @classmethod
    def _node(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                "use letters, digits, '.', '_' or '-' (at most 63), starting alphanumeric"
            )
        return value

    @model_validator(mode="after")
    def _mode(self) -> ClusterConfig:
        if self.leader == "command" and not self.command:
            raise ValueError('leader = "command" needs command = ["/path/to/is-primary", ...]')
        if self.leader != "command" and self.command:
            raise ValueError(f'command is only read with leader = "command" (not "{self.leader}")')
        if self.leader == "database":
            if self.database is None:
                raise ValueError('leader = "database" needs [cluster.database] (type, url)')
            if self.database.type == "sqlite":
                raise ValueError(
                    "[cluster.database]: sqlite has no primary or replica: use mariadb or postgresql"
                )
        elif self.database is not None:
            raise ValueError(
                f'[cluster.database] is only read with leader = "database" (not "{self.leader}")'
            )
        return self


class Config(_Model):
    """The whole configuration file."""

    appliance: ApplianceConfig = Field(description="This appliance.")
    keys: KeysConfig = Field(default_factory=KeysConfig, description="Encryption recipients.")
    destinations: dict[str, DestinationConfig] = Field(
        default_factory=dict, description="Named backup destinations, never on the appliance."
    )
    secrets: SecretsConfig | None = Field(
        default=None, description="The break-the-glass secrets backup."
    )
    system: SystemConfig | None = Field(default=None, description="The system backup.")
    recordings: RecordingsConfig | None = Field(
        default=None, description="The session recordings backup."
    )
    daemon: DaemonConfig = Field(default_factory=DaemonConfig, description="The daemon.")
    alerts: AlertsConfig = Field(default_factory=AlertsConfig, description="Alert channels.")
    probes: ProbesConfig = Field(default_factory=ProbesConfig, description="Destination probes.")
    repository: RepositoryConfig = Field(
        default_factory=RepositoryConfig, description="The product's repositories."
    )
    copies: list[CopyConfig] = Field(
        default_factory=list,
        description="Copies of backups to second destinations.",
        json_schema_extra={"sample_commented": True},
    )
    drills: DrillsConfig | None = Field(
        default=None,
        description="Restore drills: the appliance's alert, a recovery host's schedule.",
    )
    cluster: ClusterConfig | None = Field(
        default=None,
        description="Appliance clusters: only the leader runs the scheduled jobs.",
        json_schema_extra={"sample_commented": True},
    )

    @field_validator("destinations")
    @classmethod
    def _dest_names(cls, value: dict[str, DestinationConfig]) -> dict[str, DestinationConfig]:
        for name in value:
            if not _NAME.match(name):
                raise ValueError(f"destination name {name!r}: use letters, digits, '.', '_' or '-'")
        return value

    def cross_check(self) -> list[tuple[str, str]]:
        """Problems that span sections, as (key path, message) pairs."""
        problems: list[tuple[str, str]] = []
        for section in ("secrets", "system", "recordings"):
            part: Any = getattr(self, section)
            if part is not None and part.destination not in self.destinations:
                known = ", ".join(sorted(self.destinations)) or "none defined"
                problems.append(
                    (
                        f"{section}.destination",
                        f"no [destinations.{part.destination}] (known: {known})",
                    )
                )
        for n, copy in enumerate(self.copies):
            for key, name in (("from", copy.from_), ("to", copy.to)):
                if name not in self.destinations:
                    known = ", ".join(sorted(self.destinations)) or "none defined"
                    problems.append(
                        (f"copies[{n}].{key}", f"no [destinations.{name}] (known: {known})")
                    )
            if copy.from_ == copy.to:
                problems.append((f"copies[{n}].to", "a copy goes to another destination"))
        drills = self.drills
        if drills is not None and drills.destination not in (None, *self.destinations):
            known = ", ".join(sorted(self.destinations)) or "none defined"
            problems.append(
                ("drills.destination", f"no [destinations.{drills.destination}] (known: {known})")
            )
        if drills is not None and drills.schedule and drills.identity_file is None:
            problems.append(("drills.identity_file", "a drill schedule needs the key drills use"))
        cluster = self.cluster
        # Database and command modes work without one (each node's history is its slot record).
        if cluster is not None and (cluster.leader == "lease" or cluster.lease_destination):
            lease = self.lease_destination
            if lease is None:
                problems.append(
                    (
                        "cluster.lease_destination",
                        "no destination for the lease: set lease_destination or a backup's"
                        " destination",
                    )
                )
            elif lease not in self.destinations:
                known = ", ".join(sorted(self.destinations)) or "none defined"
                problems.append(
                    ("cluster.lease_destination", f"no [destinations.{lease}] (known: {known})")
                )
        return problems

    @property
    def lease_destination(self) -> str | None:
        """The destination that holds the cluster lease: ``[cluster] lease_destination``, else
        the system backup's, the secrets backup's or the recordings' destination."""
        if self.cluster is None:
            return None
        if self.cluster.lease_destination:
            return self.cluster.lease_destination
        for part in (self.system, self.secrets, self.recordings):
            if part is not None:
                return part.destination
        return None
