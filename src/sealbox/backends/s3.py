"""``s3://bucket/prefix?endpoint=http://host:port`` backend: any S3-compatible object store.

boto3 with path-style addressing (MinIO, Ceph, SeaweedFS), adaptive retries with backoff for
throttling and 5xx answers, multipart uploads above 16 MiB, and exclusive creates through the
conditional ``If-None-Match: *`` header, and optional Object Lock retention (COMPLIANCE mode,
``object_lock_days`` or ``?lock_days=N``) on every object but locks. Credentials come from the
destination config or the standard AWS environment variables; they never appear in messages.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from sealbox.backends.base import Capacity, ObjectInfo, validate_name
from sealbox.errors import (
    ConfigError,
    DestinationError,
    NotFoundError,
    ObjectExistsError,
    TransientDestinationError,
)
from sealbox.util.redact import mask_url
from sealbox.util.secretfile import read_secret_file

if TYPE_CHECKING:
    from sealbox.backends.options import S3Options

__all__ = ["SCHEMES", "S3Backend", "open_destination"]

MULTIPART = 16 * 1024 * 1024
MAX_WHOLE = 4 << 30  # a whole-object read: far above any Sealbox object


def _empty_range(exc: Exception) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in (
        "InvalidRange",
        "416",
    )


# Answers a retry may change (the retry is backends/retry.py's, not the client's).
TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
        "RequestTimeTooSkewed",
    }
)
# Never locked: repository locks must be deletable, and a cluster lease's renewal is replaced
# every few seconds (locking each version would pile up undeletable versions; the takeovers,
# cluster/lease-N, stay locked like everything else).
UNLOCKED = ("locks/", "cluster/beat-")


SCHEMES = ("s3",)


def open_destination(url: str, options: S3Options | None = None) -> S3Backend:
    """The backend for ``url`` with the destination's options (none for the plumbing, which
    reads the standard AWS environment variables); ``object_lock_days`` wins over the URL's
    ``?lock_days=``."""
    if options is None:
        return S3Backend.from_url(url)
    if (options.access_key_id is None) != (options.secret_key_file is None):
        raise ConfigError(
            "s3 destination: access_key_id and secret_key_file go together (or set neither,"
            " and the standard AWS environment variables or files are used)"
        )
    secret = None
    if options.secret_key_file is not None:
        secret = read_secret_file(options.secret_key_file, "destination secret_key_file")
    return S3Backend.from_url(
        url, options.access_key_id, secret, options.quota_bytes, options.object_lock_days
    )


class S3Backend:
    def __init__(
        self,
        bucket: str,
        prefix: str,
        endpoint: str | None,
        region: str,
        access_key: str | None = None,
        secret_key: str | None = None,
        quota: int | None = None,
        lock_days: int | None = None,
    ) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.bucket, self.prefix, self.endpoint = bucket, prefix.strip("/"), endpoint
        self.quota, self.lock_days = quota, lock_days
        # A session of its own: the default one caches credentials from the first environment it saw.
        self.client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            region_name=region,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=Config(
                s3={"addressing_style": "path", "payload_signing_enabled": False},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                # One attempt: the retries, with backoff, are backends/retry.py's for every
                # backend alike (errors say whether they may pass).
                retries={"total_max_attempts": 1, "mode": "standard"},
                connect_timeout=10,
                read_timeout=120,
                max_pool_connections=16,
            ),
        )
        self.transfer = TransferConfig(multipart_threshold=MULTIPART, multipart_chunksize=MULTIPART)

    @classmethod
    def from_url(
        cls,
        url: str,
        access_key: str | None = None,
        secret_key: str | None = None,
        quota: int | None = None,
        lock_days: int | None = None,
    ) -> S3Backend:
        parts = urlsplit(url)
        if not parts.netloc:
            raise ConfigError(
                "s3:// URLs name a bucket: s3://bucket/prefix?endpoint=http://host:port"
            )
        query = parse_qs(parts.query)
        endpoint = query.get("endpoint", [None])[0]
        region = query.get("region", ["us-east-1"])[0]
        if lock_days is None and query.get("lock_days"):
            lock_days = int(query["lock_days"][0])
        return cls(
            parts.netloc, parts.path, endpoint, region, access_key, secret_key, quota, lock_days
        )

    round_trips = True  # each request costs a round trip: readers fetch whole packs

    @property
    def display(self) -> str:
        where = f" at {self.endpoint}" if self.endpoint else ""
        return mask_url(f"s3://{self.bucket}/{self.prefix}{where}")  # an endpoint's user part

    def _key(self, name: str) -> str:
        validate_name(name)
        return f"{self.prefix}/{name}" if self.prefix else name

    def _fail(self, action: str, exc: Exception) -> DestinationError:
        from botocore.exceptions import ClientError, HTTPClientError
        from botocore.exceptions import ConnectionError as BotoConnectionError

        transient = isinstance(exc, BotoConnectionError | HTTPClientError)
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "error"))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            transient = code in TRANSIENT_CODES or status in (500, 502, 503, 504)
            reason = f"{code}: {error.get('Message', '')}".strip(": ")
        else:
            reason = type(exc).__name__ + (
                ": cannot reach the endpoint" if "Endpoint" in type(exc).__name__ else ""
            )
        kind = TransientDestinationError if transient else DestinationError
        return kind(f"{self.display}: cannot {action}: {reason}")

    @staticmethod
    def _missing(exc: Exception) -> bool:
        from botocore.exceptions import ClientError

        return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in (
            "NoSuchKey",
            "404",
            "NotFound",
        )

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        base = f"{self.prefix}/" if self.prefix else ""
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base + prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    yield ObjectInfo(
                        item["Key"][len(base) :],
                        int(item["Size"]),
                        item["LastModified"].timestamp(),
                    )
        except Exception as exc:
            raise self._fail("list", exc) from exc

    def stat(self, name: str) -> ObjectInfo:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(name))
        except Exception as exc:
            if self._missing(exc):
                raise NotFoundError(f"{self.display}: no object {name!r}") from None
            raise self._fail(f"stat {name}", exc) from exc
        return ObjectInfo(name, int(head["ContentLength"]), head["LastModified"].timestamp())

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(name)}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            if length == 0:
                return b""
            kwargs["Range"] = f"bytes={offset}-{end}"
        try:
            body = self.client.get_object(**kwargs)["Body"]
            try:
                # Never more than was asked (plus one byte to notice): an endpoint that ignores
                # the range, or answers without end, is refused instead of buffered whole.
                data: bytes = body.read(MAX_WHOLE + 1 if length is None else length + 1)
            finally:
                body.close()
        except Exception as exc:
            if self._missing(exc):
                raise NotFoundError(f"{self.display}: no object {name!r}") from None
            if length is not None and offset == 0 and _empty_range(exc):
                return b""  # a range read of an empty object: S3 says 416, it is just empty
            raise self._fail(f"read {name}", exc) from exc
        limit = MAX_WHOLE if length is None else length
        if len(data) > limit:
            raise DestinationError(
                f"{self.display}: cannot read {name}: the endpoint answered more than the"
                f" {limit:,} bytes asked for"
            )
        return data

    def put(
        self, name: str, data: bytes | bytearray | memoryview, *, exclusive: bool = False
    ) -> None:
        from botocore.exceptions import ClientError

        key = self._key(name)
        extra: dict[str, Any] = {"IfNoneMatch": "*"} if exclusive else {}
        if self.lock_days and not name.startswith(UNLOCKED):
            # Object Lock: nobody (not this appliance, not an attacker holding its credentials)
            # can delete or overwrite this version before the date. Needs a bucket made with it.
            until = datetime.now(UTC) + timedelta(days=self.lock_days)
            extra.update(ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until)
        try:
            if exclusive or len(data) < MULTIPART:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=bytes(data), **extra)
            else:  # an object appears only when its multipart upload completes: still atomic
                self.client.upload_fileobj(
                    io.BytesIO(data),
                    self.bucket,
                    key,
                    Config=self.transfer,
                    ExtraArgs=extra or None,
                )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                raise ObjectExistsError(f"{self.display}: object {name!r} exists already") from exc
            raise self._fail(f"write {name}", exc) from exc
        except Exception as exc:
            raise self._fail(f"write {name}", exc) from exc

    @property
    def legal_holds(self) -> bool:
        """Object Lock is in use here: objects can carry an S3 legal hold."""
        return bool(self.lock_days)

    def set_legal_hold(self, name: str, on: bool) -> None:
        """An S3 legal hold on the object's current version: while it is ON, nobody can delete
        or overwrite that version, whatever its retention date (a delete only adds a marker)."""
        status = "ON" if on else "OFF"
        try:
            self.client.put_object_legal_hold(
                Bucket=self.bucket, Key=self._key(name), LegalHold={"Status": status}
            )
        except Exception as exc:
            raise self._fail(f"set the legal hold of {name}", exc) from exc

    def delete(self, name: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(name))
        except Exception as exc:
            if not self._missing(exc):
                raise self._fail(f"delete {name}", exc) from exc

    def flush(self) -> None:
        return None  # a completed PUT is durable

    def capacity(self) -> Capacity:
        if self.quota is None:
            return Capacity(free=None, total=None)
        used = sum(info.size for info in self.list(""))
        return Capacity(free=max(0, self.quota - used), total=self.quota)

    def close(self) -> None:
        return None
