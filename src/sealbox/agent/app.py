"""The agent's HTTP API (docs/design/agent-api.md), a Starlette app served by uvicorn.

Every object lives at ``ROOT/<namespace>/<name>``. Uploads stream to a temporary file (fsync,
then rename or, for exclusive puts, link), so a 64 MiB pack never sits whole in memory and a
reader never sees half an object. In append-only mode nothing stored can be replaced or deleted,
except repository locks and probe canaries, which carry no backup data.
"""

from __future__ import annotations

import asyncio
import errno
import os
import secrets
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from sealbox import __version__
from sealbox.agent.tokens import NAMESPACE, Token, TokenStore
from sealbox.backends.base import validate_name
from sealbox.errors import DestinationError

__all__ = ["build_app"]

CHUNK = 1 << 20
MUTABLE = ("locks/", "probes/")  # deletable even in append-only mode: no backup data


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class Agent:
    def __init__(
        self,
        root: Path,
        append_only: bool,
        max_object: int,
        quota: int | None,
        idle_timeout: float = 60.0,
    ) -> None:
        self.root, self.append_only, self.max_object, self.quota = (
            root,
            append_only,
            max_object,
            quota,
        )
        self.idle_timeout = idle_timeout
        self.tokens = TokenStore(root)
        self._cache: tuple[float, TokenStore] | None = None

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

    def path(self, namespace: str, name: str) -> Path | Response:
        try:
            validate_name(name)
        except DestinationError:
            return _error(400, "invalid object name")
        return self.root / namespace / name

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True, "version": __version__, "append_only": self.append_only})

    async def listing(self, request: Request) -> Response:
        namespace = request.path_params["ns"]
        auth = self.authorize(request, namespace)
        if isinstance(auth, Response):
            return auth
        prefix = request.query_params.get("prefix", "")
        base = self.root / namespace

        def walk() -> list[dict[str, Any]]:
            found = []
            for dirpath, dirnames, filenames in os.walk(base):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                rel = os.path.relpath(dirpath, base)
                for filename in filenames:
                    if filename.startswith("."):
                        continue
                    name = filename if rel == "." else f"{rel}/{filename}"
                    if name.startswith(prefix):
                        st = os.stat(os.path.join(dirpath, filename))
                        found.append({"name": name, "size": st.st_size, "mtime": st.st_mtime})
            return found

        return JSONResponse(await asyncio.to_thread(walk))

    async def capacity(self, request: Request) -> Response:
        namespace = request.path_params["ns"]
        auth = self.authorize(request, namespace)
        if isinstance(auth, Response):
            return auth
        usage = shutil.disk_usage(self.root)

        def used() -> int:
            return sum(p.stat().st_size for p in (self.root / namespace).rglob("*") if p.is_file())

        total_used = await asyncio.to_thread(used)
        free = (
            usage.free if self.quota is None else max(0, min(usage.free, self.quota - total_used))
        )
        return JSONResponse(
            {
                "free": free,
                "total": usage.total if self.quota is None else self.quota,
                "used": total_used,
                "quota": self.quota,
            }
        )

    async def obj(self, request: Request) -> Response:
        namespace, name = request.path_params["ns"], request.path_params["name"]
        auth = self.authorize(request, namespace)
        if isinstance(auth, Response):
            return auth
        path = self.path(namespace, name)
        if isinstance(path, Response):
            return path
        if request.method in ("GET", "HEAD"):
            return self._read(request, path)
        if request.method == "PUT":
            return await self._write(request, path, name, auth)
        return self._delete(path, name, auth)

    def _read(self, request: Request, path: Path) -> Response:
        try:
            st = path.stat()
        except FileNotFoundError:
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
            with open(path, "rb") as handle:
                handle.seek(start)
                left = end - start
                while left > 0:
                    chunk = await asyncio.to_thread(handle.read, min(CHUNK, left))
                    if not chunk:
                        break
                    left -= len(chunk)
                    yield chunk

        return StreamingResponse(body(), status_code=status, headers=headers)

    async def _write(self, request: Request, path: Path, name: str, token: Token) -> Response:
        exclusive = request.headers.get("if-none-match") == "*"
        if self.append_only and not token.admin and not name.startswith(MUTABLE):
            exclusive = True  # append-only: an object, once stored, is never replaced
        declared = request.headers.get("content-length")
        if declared is not None and int(declared) > self.max_object:
            return _error(413, f"object larger than {self.max_object} bytes")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".tmp-{secrets.token_hex(8)}"
        size = 0
        try:
            with open(tmp, "wb") as handle:
                stream = request.stream().__aiter__()
                while True:
                    try:  # a client that stops sending is cut off, not waited for forever
                        chunk = await asyncio.wait_for(
                            stream.__anext__(), timeout=self.idle_timeout
                        )
                    except StopAsyncIteration:
                        break
                    size += len(chunk)
                    if size > self.max_object:
                        raise _TooLarge
                    await asyncio.to_thread(handle.write, chunk)
                handle.flush()
                await asyncio.to_thread(os.fsync, handle.fileno())
            if exclusive:
                os.link(tmp, path)  # fails if the name exists: never replaces
                tmp.unlink()
            else:
                os.replace(tmp, path)
        except _TooLarge:
            tmp.unlink(missing_ok=True)
            return _error(413, f"object larger than {self.max_object} bytes")
        except TimeoutError:
            tmp.unlink(missing_ok=True)
            return _error(408, f"no data for {self.idle_timeout:g} s: upload abandoned")
        except FileExistsError:
            tmp.unlink(missing_ok=True)
            return _error(409, "object exists" + (" (append-only)" if self.append_only else ""))
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            status = 507 if exc.errno in (errno.ENOSPC, errno.EDQUOT) else 500
            return _error(status, exc.strerror or "write failed")
        except BaseException:  # the client went away mid-upload: leave nothing behind
            tmp.unlink(missing_ok=True)
            raise
        return Response(status_code=201)

    def _delete(self, path: Path, name: str, token: Token) -> Response:
        if self.append_only and not token.admin and not name.startswith(MUTABLE):
            return _error(403, "append-only: stored objects cannot be deleted")
        path.unlink(missing_ok=True)
        return Response(status_code=204)


class _TooLarge(Exception):
    pass


def build_app(
    root: Path,
    append_only: bool = False,
    max_object: int = 512 << 20,
    quota: int | None = None,
    idle_timeout: float = 60.0,
) -> Starlette:
    agent = Agent(root, append_only, max_object, quota, idle_timeout)
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
