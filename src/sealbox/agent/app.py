"""The agent's HTTP API (docs/design/agent-api.md), a Starlette app served by uvicorn.

Every object lives at ``ROOT/<namespace>/<name>``; only regular files are objects. Uploads stream
to a temporary file (fsync, then rename or, for exclusive puts, link), so a 64 MiB pack never sits
whole in memory and a reader never sees half an object. In append-only mode nothing stored can be
replaced or deleted, except repository locks and probe canaries, which carry no backup data.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
import secrets
import shutil
import stat
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from sealbox import __version__
from sealbox.agent.tokens import NAMESPACE, Token, TokenStore
from sealbox.agent.upload import Refused, UploadRules, receive, same_bytes
from sealbox.agent.usage import QuotaExceeded, Usage, objects
from sealbox.backends.base import validate_name
from sealbox.errors import DestinationError

__all__ = ["build_app", "mutable"]

log = logging.getLogger("sealbox.agent")
CHUNK = 1 << 20
# What append-only mode still lets be replaced and deleted, by the *shape* of the last two
# name components: a repository lock (``locks/`` + 32 hex digits, as `repo/locks.py` names them)
# a probe canary (``probes/canary-...``, as `probe.py` names them) and a cluster lease's renewal
# (``cluster/beat-`` + 12 digits, as `destinations/lease.py` names them; the takeovers,
# ``cluster/lease-N``, stay immutable, so append-only keeps the fencing counters' history). None
# holds backup data, and nothing else Sealbox stores has such a name, so a destination whose own
# path ends in ``locks``, ``probes`` or ``cluster`` gains no mutable objects (its config, backups
# and packs keep their protection).
_MUTABLE = {
    "locks": re.compile(r"^[0-9a-f]{32}$"),
    "probes": re.compile(r"^canary-[A-Za-z0-9._-]+$"),
    "cluster": re.compile(r"^beat-[0-9]{12}$"),
}


def mutable(name: str) -> bool:
    """Whether append-only mode still lets this object be replaced and deleted (see _MUTABLE);
    at any depth, since a repository may live below a path of the namespace (``repo/locks/X``)."""
    parts = name.split("/")
    if len(parts) < 2 or parts[-2] not in _MUTABLE:
        return False
    return bool(_MUTABLE[parts[-2]].match(parts[-1]))


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _lstat(path: Path) -> os.stat_result | None:
    """The entry's own metadata (a symlink is not followed), None if nothing is there."""
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


class Agent:
    def __init__(
        self,
        root: Path,
        append_only: bool,
        max_object: int,
        quota: int | None,
        rules: UploadRules,
    ) -> None:
        self.root, self.append_only, self.max_object = root, append_only, max_object
        self.rules = rules
        self.tokens = TokenStore(root)
        self.usage = Usage(root, quota)

    def authorize(self, request: Request, namespace: str) -> Token | Response:
        if not NAMESPACE.match(namespace):
            return _error(400, "bad namespace")
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            return _error(401, "a token is required (Authorization: Bearer ...)")
        token = self.tokens.check(header[7:].strip())
        if token is None:
            return _error(401, "unknown or revoked token")
        if token.namespace != namespace:
            return _error(403, "this token does not reach that namespace")
        return token

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True, "version": __version__, "append_only": self.append_only})

    async def listing(self, request: Request) -> Response:
        namespace = request.path_params["ns"]
        auth = self.authorize(request, namespace)
        if isinstance(auth, Response):
            return auth
        prefix = request.query_params.get("prefix", "")
        base = self.root / namespace

        def walk() -> list[dict[str, object]]:
            return [
                {"name": name, "size": st.st_size, "mtime": st.st_mtime}
                for name, st in objects(base)
                if name.startswith(prefix)
            ]

        return JSONResponse(await asyncio.to_thread(walk))

    async def capacity(self, request: Request) -> Response:
        namespace = request.path_params["ns"]
        auth = self.authorize(request, namespace)
        if isinstance(auth, Response):
            return auth
        disk = shutil.disk_usage(self.root)
        used = await self.usage.used(namespace)
        quota = self.usage.quota
        if quota is None:
            free, total = disk.free, disk.total
        else:  # uploads under way hold their reservation: what they will use is not free
            free = max(0, min(disk.free, quota - used - self.usage.reserved(namespace)))
            total = quota
        return JSONResponse({"free": free, "total": total, "used": used, "quota": quota})

    async def obj(self, request: Request) -> Response:
        namespace, name = request.path_params["ns"], request.path_params["name"]
        auth = self.authorize(request, namespace)
        if isinstance(auth, Response):
            return auth
        try:
            validate_name(name)
        except DestinationError:
            return _error(400, "invalid object name")
        path = self.root / namespace / name
        try:
            if request.method in ("GET", "HEAD"):
                return self._read(request, path)
            if request.method == "PUT":
                return await self._write(request, namespace, path, name, auth)
            return await self._delete(namespace, path, name, auth)
        except OSError as exc:  # a fault of the storage host: details go to its log, not the peer
            log.warning("%s %s/%s: %s", request.method, namespace, name, exc)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                return _error(507, "the storage is full")
            return _error(500, "storage error on the agent (see its log)")

    def _read(self, request: Request, path: Path) -> Response:
        st = _lstat(path)
        if st is None or not stat.S_ISREG(st.st_mode):  # directories and symlinks are not objects
            return _error(404, "no such object")
        start, end = 0, st.st_size
        header = request.headers.get("range")
        status = 200
        if header:
            try:
                first, _, last = header.removeprefix("bytes=").partition("-")
                start = int(first)
                end = min(st.st_size, int(last) + 1) if last else st.st_size
            except ValueError:
                return _error(416, "bad range")
            status = 206
        headers = {
            "content-length": str(max(0, end - start)),
            "x-mtime": str(st.st_mtime),
            "x-size": str(st.st_size),
        }
        if request.method == "HEAD":
            return Response(status_code=200, headers=headers)

        async def body() -> AsyncIterator[bytes]:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with open(fd, "rb") as handle:
                handle.seek(start)
                left = end - start
                while left > 0:
                    chunk = await asyncio.to_thread(handle.read, min(CHUNK, left))
                    if not chunk:
                        break
                    left -= len(chunk)
                    yield chunk

        return StreamingResponse(body(), status_code=status, headers=headers)

    async def _write(
        self, request: Request, namespace: str, path: Path, name: str, token: Token
    ) -> Response:
        exclusive = request.headers.get("if-none-match") == "*"
        # Append-only: an object, once stored, is never replaced (an identical re-put is fine).
        protected = self.append_only and not token.admin and not mutable(name)
        try:
            declared = int(request.headers["content-length"])
        except KeyError:
            declared = None
        except ValueError:
            return _error(400, "bad Content-Length")
        if declared is not None and declared > self.max_object:
            return _error(413, f"object larger than {self.max_object} bytes")
        clash = _placement(self.root / namespace, path)
        if clash:
            return _error(409, clash)
        # A replacement needs only the bytes beyond what it replaces (re-checked at commit, in
        # case the old object goes meanwhile).
        old = _lstat(path) if not (exclusive or protected) else None
        credit = old.st_size if old is not None else 0
        try:
            reservation = await self.usage.reserve(namespace, max(0, (declared or 0) - credit))
        except QuotaExceeded as exc:
            return _error(507, str(exc))

        def grow(received: int) -> None:
            self.usage.grow(reservation, max(0, received - credit - reservation.size))

        tmp: Path | None = None
        try:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                return _error(409, "a parent of this name is an object, not a directory")
            tmp = path.parent / f".tmp-{secrets.token_hex(8)}"
            size = await receive(
                request, tmp, self.rules, self.max_object, None if declared is not None else grow
            )
            if exclusive or protected:
                self.usage.admit(reservation, size)
                try:
                    os.link(tmp, path)  # fails if the name exists: never replaces
                except FileExistsError:
                    # Content-named objects: a retried upload of the same bytes is not a change.
                    if not exclusive and await asyncio.to_thread(same_bytes, tmp, path):
                        return Response(status_code=200)
                    suffix = " (append-only)" if protected and not exclusive else ""
                    return _error(409, "object exists" + suffix)
                self.usage.commit(reservation, size)
                return Response(status_code=201)
            old = _lstat(path)
            if old is not None and not stat.S_ISREG(old.st_mode):
                return _error(409, "that name is a directory, not an object")
            delta = size - (old.st_size if old is not None else 0)
            self.usage.admit(reservation, delta)
            os.replace(tmp, path)
            self.usage.commit(reservation, delta)
            return Response(status_code=201)
        except QuotaExceeded as exc:
            return _error(507, str(exc))
        except Refused as exc:
            return _error(exc.status, str(exc))
        finally:  # every path, a client that went away included: nothing half-stored, nothing held
            self.usage.release(reservation)
            if tmp is not None:
                tmp.unlink(missing_ok=True)

    async def _delete(self, namespace: str, path: Path, name: str, token: Token) -> Response:
        if self.append_only and not token.admin and not mutable(name):
            return _error(403, "append-only: stored objects cannot be deleted")
        await self.usage.used(namespace)  # measured before the count is changed
        st = _lstat(path)
        if st is not None and stat.S_ISDIR(st.st_mode):
            return _error(409, "that name is a directory, not an object")
        if st is not None:
            path.unlink(missing_ok=True)
            if stat.S_ISREG(st.st_mode):
                self.usage.removed(namespace, st.st_size)
        return Response(status_code=204)


def _placement(base: Path, path: Path) -> str | None:
    """Why an object cannot be stored at ``path``, or None: it is a directory or a symlink, or
    one of its parents is an object (``a`` stored, PUT ``a/b``)."""
    st = _lstat(path)
    if st is not None and not stat.S_ISREG(st.st_mode):
        return "that name is a directory, not an object"
    parent = path.parent
    while parent != base and base in parent.parents:
        st = _lstat(parent)
        if st is not None:
            return None if stat.S_ISDIR(st.st_mode) else "a parent of this name is an object"
        parent = parent.parent
    return None


def build_app(
    root: Path,
    *,
    append_only: bool = False,
    max_object: int = 512 << 20,
    quota: int | None = None,
    rules: UploadRules | None = None,
) -> Starlette:
    agent = Agent(root, append_only, max_object, quota, rules or UploadRules())
    return Starlette(
        routes=[
            Route("/v1/health", agent.health),
            Route("/v1/ns/{ns}/objects", agent.listing),
            Route("/v1/ns/{ns}/capacity", agent.capacity),
            Route(
                "/v1/ns/{ns}/objects/{name:path}",
                agent.obj,
                methods=["GET", "HEAD", "PUT", "DELETE"],
            ),
        ]
    )
