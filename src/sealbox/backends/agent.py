"""``agent+https://host:port/namespace`` backend: the Sealbox agent on the storage server.

The token comes from the destination's ``token_file`` or ``SEALBOX_AGENT_TOKEN``; the server's
certificate is checked against ``ca_file`` / ``SEALBOX_AGENT_CA`` (a CA or the pinned certificate
itself). An agent that requires mutual TLS (``agent serve --client-ca``) gets the destination's
``client_cert``/``client_key`` (``SEALBOX_AGENT_CLIENT_CERT``/``_KEY`` for the plumbing).
``agent+http://`` is allowed to a loopback address only.
"""

from __future__ import annotations

import functools
import os
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import orjson

from sealbox.backends.base import Capacity, ObjectInfo, validate_name
from sealbox.errors import (
    ConfigError,
    DestinationError,
    NotFoundError,
    ObjectExistsError,
    TransientDestinationError,
)
from sealbox.util.netaddr import loopback_host
from sealbox.util.redact import mask_url

if TYPE_CHECKING:
    from sealbox.backends.options import AgentOptions

__all__ = ["SCHEMES", "AgentBackend", "open_destination"]

MAX_ANSWER = 4 << 30  # a whole object or a listing: far above any Sealbox object
MAX_ERROR = 64 << 10  # an error answer's body


SCHEMES = ("agent+https", "agent+http")


def open_destination(url: str, options: AgentOptions | None = None) -> AgentBackend:
    if options is None:
        return AgentBackend.from_url(url)
    return AgentBackend.from_url(
        url, options.token_file, options.ca_file, options.client_cert, options.client_key
    )


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: Any
    data: bytes


class _Refused(DestinationError):
    """An error answer of the agent (its status kept, so callers can tell 409 from 403)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class _Busy(TransientDestinationError, _Refused):
    """An answer that may change on a retry: 408, 429, or a 5xx other than 507 (out of
    space: that is not passing)."""


TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


def _listed(item: Any, base: str) -> ObjectInfo:
    """One entry of the agent's listing (TypeError, KeyError or ValueError when malformed)."""
    name = item["name"]
    if not isinstance(name, str):
        raise TypeError("object name is not a string")
    return ObjectInfo(name[len(base) :], int(item["size"]), float(item["mtime"]))


class AgentBackend:
    round_trips = True  # each request costs a round trip: readers fetch whole packs

    def __init__(
        self, base: str, namespace: str, token: str, verify: Any, prefix: str = ""
    ) -> None:
        import urllib3

        self.base, self.namespace, self.prefix = base, namespace, prefix.strip("/")
        self.root = f"{base}/v1/ns/{namespace}"
        self.headers = {"Authorization": f"Bearer {token}"}
        # urllib3 (http.client underneath, C-accelerated) moves large bodies far faster than a
        # pure-Python HTTP parser; a pool of keep-alive connections serves every thread.
        tls: dict[str, Any] = {"ssl_context": verify} if isinstance(verify, ssl.SSLContext) else {}
        self.client = urllib3.PoolManager(
            num_pools=2,
            maxsize=16,
            block=False,
            retries=False,
            timeout=urllib3.Timeout(connect=10, read=120),
            **tls,
        )

    @classmethod
    def from_url(
        cls,
        url: str,
        token_file: Path | None = None,
        ca_file: Path | None = None,
        client_cert: Path | None = None,
        client_key: Path | None = None,
    ) -> AgentBackend:
        parts = urlsplit(url)
        scheme = parts.scheme.removeprefix("agent+")
        namespace, _, prefix = parts.path.strip("/").partition("/")
        if not parts.hostname or not namespace:
            raise ConfigError("agent URLs look like agent+https://host:port/namespace[/path]")
        if scheme == "http" and not loopback_host(parts.hostname):
            raise ConfigError(
                "agent+http:// is allowed to a loopback address only: use agent+https://"
            )
        token = None
        if token_file is not None:
            try:
                token = token_file.read_text().strip()
            except OSError as exc:
                raise ConfigError(
                    f"cannot read the agent token file {token_file}: {exc.strerror}"
                ) from exc
        token = token or os.environ.get("SEALBOX_AGENT_TOKEN")
        if not token:
            raise ConfigError(
                "agent destination: no token (token_file in the config, or SEALBOX_AGENT_TOKEN)"
            )
        verify: Any = True
        ca = ca_file or (
            Path(os.environ["SEALBOX_AGENT_CA"]) if os.environ.get("SEALBOX_AGENT_CA") else None
        )
        if scheme == "https" and ca is not None:
            try:
                verify = ssl.create_default_context(cafile=str(ca))
            except (OSError, ssl.SSLError) as exc:
                reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
                raise ConfigError(f"cannot load the agent CA file {ca}: {reason}") from exc
        cert = client_cert or _env_path("SEALBOX_AGENT_CLIENT_CERT")
        key = client_key or _env_path("SEALBOX_AGENT_CLIENT_KEY")
        if cert is not None and scheme == "https":  # mutual TLS: the agent asks for it
            if not isinstance(verify, ssl.SSLContext):
                verify = ssl.create_default_context()
            try:
                verify.load_cert_chain(str(cert), str(key) if key else None)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(
                    f"agent client certificate {cert}: cannot load it ({exc})"
                ) from exc
        return cls(f"{scheme}://{parts.netloc}", namespace, token, verify, prefix)

    @property
    def display(self) -> str:
        shown = f"agent+{self.base}/{self.namespace}" + (f"/{self.prefix}" if self.prefix else "")
        return mask_url(shown)  # the URL's user part, if any, is kept in base

    def _name(self, name: str) -> str:
        validate_name(name)
        return f"{self.prefix}/{name}" if self.prefix else name

    def _request(
        self,
        method: str,
        path: str,
        action: str,
        params: dict[str, str] | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        root: str | None = None,
        limit: int = MAX_ANSWER,
    ) -> _Answer:
        """One request; the body is read up to ``limit`` bytes and no further: an agent (or
        whoever answers in its place) that sends more than was asked is refused, never
        buffered whole."""
        import urllib3

        url = (root or self.root) + path + (f"?{urlencode(params)}" if params else "")
        try:
            response = self.client.request(
                method,
                url,
                body=content,
                headers={**self.headers, **(headers or {})},
                preload_content=False,
            )
        except urllib3.exceptions.HTTPError as exc:  # no connection, a reset, a timeout
            raise TransientDestinationError(
                f"{self.display}: cannot {action}: {type(exc).__name__} {exc}"
            ) from exc
        try:
            cap = MAX_ERROR if response.status >= 400 else limit
            data = response.read(cap + 1) if method != "HEAD" else b""
            complete = len(data) <= cap
        except urllib3.exceptions.HTTPError as exc:
            response.close()
            raise TransientDestinationError(
                f"{self.display}: cannot {action}: {type(exc).__name__} {exc}"
            ) from exc
        if complete and response.status < 400 and method != "HEAD":
            response.release_conn()
        else:
            response.close()  # what is left unread is dropped with the connection
        if response.status == 404:
            raise NotFoundError(f"{self.display}: no object for {action}")
        if response.status >= 400:
            try:
                doc = orjson.loads(data[:MAX_ERROR])
                reason = doc.get("error", "") if isinstance(doc, dict) else ""
            except orjson.JSONDecodeError:
                reason = data[:200].decode(errors="replace")
            refused = _Busy if response.status in TRANSIENT_STATUS else _Refused
            raise refused(
                f"{self.display}: cannot {action}: {response.status} {reason}", response.status
            )
        if not complete:
            raise DestinationError(
                f"{self.display}: cannot {action}: the agent answered more than the {limit:,}"
                " bytes asked for"
            )
        return _Answer(response.status, response.headers, data)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        base = f"{self.prefix}/" if self.prefix else ""
        response = self._request("GET", "/objects", "list", params={"prefix": base + prefix})
        try:
            found = [_listed(item, base) for item in orjson.loads(response.data)]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, OverflowError) as exc:
            raise DestinationError(f"{self.display}: malformed object listing") from exc
        yield from found

    def stat(self, name: str) -> ObjectInfo:
        response = self._request("HEAD", f"/objects/{self._name(name)}", f"stat {name}")
        try:
            return ObjectInfo(
                name, int(response.headers["x-size"]), float(response.headers["x-mtime"])
            )
        except (KeyError, ValueError) as exc:
            raise DestinationError(f"{self.display}: malformed answer to stat {name}") from exc

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        headers = {}
        if offset or length is not None:
            if length == 0:
                return b""
            headers["Range"] = f"bytes={offset}-" + (
                "" if length is None else str(offset + length - 1)
            )
        return self._request(
            "GET",
            f"/objects/{self._name(name)}",
            f"read {name}",
            headers=headers,
            limit=MAX_ANSWER if length is None else length,
        ).data

    def put(
        self, name: str, data: bytes | bytearray | memoryview, *, exclusive: bool = False
    ) -> None:
        headers = {"If-None-Match": "*"} if exclusive else {}
        body = bytes(data)
        try:
            self._request(
                "PUT",
                f"/objects/{self._name(name)}",
                f"write {name}",
                content=body,
                headers=headers,
            )
        except _Refused as exc:
            if exc.status == 409:
                raise ObjectExistsError(f"{self.display}: object {name!r} exists already") from exc
            raise

    def delete(self, name: str) -> None:
        try:
            self._request("DELETE", f"/objects/{self._name(name)}", f"delete {name}")
        except _Refused as exc:
            if exc.status == 403 and "append-only" in str(exc):
                raise DestinationError(
                    f"{self.display}: cannot delete {name}: the destination is append-only"
                    " (prune with an admin token, on the storage host)"
                ) from exc
            raise

    @functools.cached_property
    def append_only(self) -> bool:
        """Whether the agent refuses deletions (``/v1/health``, asked once): callers skip the
        deletions they can do without. Raises DestinationError if the agent cannot say."""
        action = "ask whether it is append-only"
        try:
            doc = orjson.loads(self._request("GET", "/v1/health", action, root=self.base).data)
        except (NotFoundError, orjson.JSONDecodeError) as exc:
            raise DestinationError(f"{self.display}: cannot {action}: {exc}") from exc
        value = doc.get("append_only") if isinstance(doc, dict) else None
        if not isinstance(value, bool):
            raise DestinationError(f"{self.display}: cannot {action}: no answer in /v1/health")
        return value

    def flush(self) -> None:
        return None  # the agent fsyncs each object before answering

    def capacity(self) -> Capacity:
        try:
            doc = orjson.loads(self._request("GET", "/capacity", "measure free space").data)
            free, total = doc.get("free"), doc.get("total")
        except (orjson.JSONDecodeError, AttributeError) as exc:
            raise DestinationError(f"{self.display}: malformed answer to capacity") from exc
        if not all(v is None or type(v) is int for v in (free, total)):
            raise DestinationError(f"{self.display}: malformed answer to capacity")
        return Capacity(free=free, total=total)

    def close(self) -> None:
        self.client.clear()
