"""The dashboard: server-rendered pages (Jinja2), SVG charts drawn here, a few lines of vanilla
JavaScript for run progress; everything served by the daemon, nothing from the internet.

Pages: overview (``/``), destinations, history, alerts; ``POST /run/{job}`` (operators, CSRF);
``/ui/jobs`` (JSON the page polls while a run goes). See :mod:`sealbox.dashboard.auth`.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from sealbox.alerts.notifier import Notifier, recent_deliveries
from sealbox.daemon.api import api_token
from sealbox.dashboard import charts
from sealbox.dashboard.auth import COOKIE, Session, Sessions, csrf_ok
from sealbox.destinations.probe import last_probes
from sealbox.destinations.sizing import last_reports, usage_samples
from sealbox.errors import RunRefusedError
from sealbox.keys.store import Keystore
from sealbox.usecases import snapshot_rows
from sealbox.util.redact import mask_url

if TYPE_CHECKING:
    from sealbox.daemon.service import Daemon

__all__ = ["routes"]

HERE = Path(__file__).parent
KINDS = ("secrets", "system", "recordings")
FORM_SECONDS = 10.0

_env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["bytes"] = charts.human_bytes


def _when(value: Any) -> str:
    if value in (None, ""):
        return "-"
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value).replace("T", " ").replace("Z", " UTC")


def _ago(value: Any) -> str:
    if not isinstance(value, int | float):
        return ""
    seconds = int(time.time() - value)
    if seconds < 0:
        seconds = -seconds
        return f"in {seconds // 60} min" if seconds >= 60 else f"in {seconds} s"
    return f"{seconds // 60} min ago" if seconds >= 60 else f"{seconds} s ago"


_env.filters["when"] = _when
_env.filters["ago"] = _ago


def routes(daemon: Daemon) -> list[BaseRoute]:
    sessions = Sessions()

    def current(request: Request) -> tuple[str | None, Session | None]:
        sid = request.cookies.get(COOKIE)
        return sid, sessions.get(sid)

    def render(request: Request, template: str, session: Session, **context: Any) -> Response:
        html = _env.get_template(template).render(
            session=session,
            page=template.removesuffix(".html"),
            appliance=daemon.config.appliance.name,
            path=request.url.path,
            **context,
        )
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})  # CSP: headers.py

    def to_login(request: Request) -> Response:
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)

    def same_origin(request: Request) -> bool:
        origin = request.headers.get("origin")
        if not origin or origin == "null":
            return origin is None
        return urlsplit(origin).netloc == request.headers.get("host")

    async def login_page(request: Request) -> Response:
        html = _env.get_template("login.html").render(
            appliance=daemon.config.appliance.name,
            error=request.query_params.get("error"),
            next=request.query_params.get("next", "/"),
        )
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    async def login(request: Request) -> Response:
        client = request.client.host if request.client else "?"
        form = await _form(request)
        target = str(form.get("next") or "/")
        if not target.startswith("/") or target.startswith("//"):
            target = "/"
        if not same_origin(request):
            return HTMLResponse("cross-site login refused", status_code=403)
        if sessions.locked_out(client):
            return RedirectResponse("/login?error=too+many+failed+logins", status_code=303)
        if sessions.busy(client):
            return RedirectResponse("/login?error=busy:+try+again+in+a+moment", status_code=303)
        made = await sessions.login(
            daemon.config.daemon,
            api_token(daemon),
            client,
            str(form.get("user") or ""),
            str(form.get("password") or ""),
        )
        if made is None:
            return RedirectResponse("/login?error=wrong+name+or+password", status_code=303)
        sid, session = made
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE,
            sid,
            max_age=int(session.expires - time.time()),
            httponly=True,
            secure=True,
            samesite="strict",
            path="/",
        )
        return response

    async def logout(request: Request) -> Response:
        sid, session = current(request)
        form = await _form(request)
        if session is not None and csrf_ok(session, str(form.get("csrf") or "")):
            sessions.logout(sid)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    async def overview(request: Request) -> Response:
        _, session = current(request)
        if session is None:
            return to_login(request)
        status = await daemon.status_doc()
        snap = daemon.snapshot()
        kinds = {k["kind"]: k for k in status["kinds"]}
        cards = []
        for kind in KINDS:
            info = kinds.get(kind)
            job = snap["jobs"].get(kind)
            cards.append({"kind": kind, "info": info, "job": job})

        key = Keystore(daemon.config.appliance.state_dir).current()
        return render(
            request,
            "overview.html",
            session,
            cards=cards,
            key=key,
            recipients=daemon.config.keys.recipients,
            status=status,
            snap=snap,
            other_jobs={k: v for k, v in snap["jobs"].items() if k not in KINDS},
            notice=request.query_params.get("notice"),
        )

    async def destinations(request: Request) -> Response:
        _, session = current(request)
        if session is None:
            return to_login(request)

        state = daemon.config.appliance.state_dir
        status = await daemon.status_doc()
        probes = last_probes(state)
        reports = last_reports(state)
        samples = usage_samples(state)
        rows = []
        for name, dest in sorted(daemon.config.destinations.items()):
            probe = probes.get(name, {})
            report = reports.get(name, {})
            history = probe.get("history", [])
            latency = {
                "write+read ms": [
                    (_ts(h[0]), (h[2] or 0) + (h[3] or 0))
                    for h in history
                    if h[1] and h[2] is not None
                ]
            }
            recent = [
                {
                    "time": h[0],
                    "ok": h[1],
                    "ms": (h[2] or 0) + (h[3] or 0) if h[1] else None,
                    "error": h[4] if len(h) > 4 else None,
                }
                for h in reversed(history[-10:])
            ]
            free = {"free": [(t, f) for t, f in samples.get(name, [])]}
            rows.append(
                {
                    "name": name,
                    "url": mask_url(dest.url.split("?")[0]),
                    "probe": probe,
                    "report": report,
                    "failures": sum(1 for h in history[-288:] if not h[1]),
                    "recent": recent,
                    "probes": len(history),
                    "capacity_svg": charts.capacity_bar(
                        report.get("used_bytes"),
                        report.get("available_bytes"),
                        report.get("target_bytes"),
                        title=f"{name} capacity against the 150% target",
                    ),
                    "latency_svg": charts.line_chart(
                        latency,
                        title=f"{name}: probe latency (ms)",
                        y_format=lambda v: f"{v:,.0f}",
                        css_id=f"latency-{name}",
                    ),
                    "free_svg": charts.line_chart(
                        free,
                        title=f"{name}: free space",
                        y_format=charts.human_bytes,
                        css_id=f"free-{name}",
                    ),
                }
            )
        return render(request, "destinations.html", session, rows=rows, status=status)

    async def snapshots(request: Request) -> Response:
        _, session = current(request)
        if session is None:
            return to_login(request)
        kind = request.query_params.get("kind") or "system"
        if kind not in KINDS:
            kind = "system"
        found, error = await asyncio.to_thread(snapshot_rows.rows, daemon.config, kind)
        return render(
            request, "snapshots.html", session, kinds=KINDS, kind=kind, rows=found, error=error
        )

    async def history(request: Request) -> Response:
        _, session = current(request)
        if session is None:
            return to_login(request)
        q = request.query_params
        kind = q.get("kind") or None
        result = q.get("result") or None
        since_text = q.get("since") or ""
        since = None
        if since_text:
            try:
                since = datetime.strptime(since_text, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
            except ValueError:
                since_text = ""
        runs = daemon.history.runs(kind=kind, result=result, since=since, limit=500)
        finished = [r for r in runs if r["ended"] is not None]
        by_kind: dict[str, list[tuple[float, float]]] = {}
        durations: dict[str, list[tuple[float, float]]] = {}
        for r in finished:
            if r["kind"] in KINDS and r["result"] == "success":
                by_kind.setdefault(r["kind"], []).append((r["ended"], float(r["bytes"] or 0)))
            durations.setdefault(r["kind"], []).append((r["ended"], r["ended"] - r["started"]))
        return render(
            request,
            "history.html",
            session,
            runs=runs,
            kinds=sorted(daemon.jobs),
            results=("success", "failed", "interrupted", "running"),
            kind=kind or "",
            result=result or "",
            since=since_text,
            bytes_svg=charts.line_chart(
                by_kind, title="bytes added per run", y_format=charts.human_bytes, css_id="bytes"
            ),
            duration_svg=charts.line_chart(
                durations,
                title="run duration (s)",
                y_format=lambda v: f"{v:,.1f}",
                css_id="durations",
            ),
        )

    async def alerts(request: Request) -> Response:
        _, session = current(request)
        if session is None:
            return to_login(request)

        notifier = Notifier(daemon.config)
        return render(
            request,
            "alerts.html",
            session,
            deliveries=recent_deliveries(daemon.config.appliance.state_dir, limit=300),
            channels=[c.id for c in notifier.channels],
            conditions=notifier.active(),
            queued=notifier.queued(),
        )

    async def run(request: Request) -> Response:
        _, session = current(request)
        if session is None:
            return HTMLResponse("log in first", status_code=401)
        form = await _form(request)
        if not same_origin(request) or not csrf_ok(session, str(form.get("csrf") or "")):
            return HTMLResponse("forged or expired form (CSRF): reload the page", status_code=403)
        if not session.operator:
            return HTMLResponse("your role is read-only", status_code=403)
        job = request.path_params["job"]
        try:
            run_id = daemon.run_now(job)
        except RunRefusedError as exc:
            return RedirectResponse(f"/?{urlencode({'notice': str(exc)})}", status_code=303)
        return RedirectResponse(f"/?started={job}&run={run_id}", status_code=303)

    async def jobs(request: Request) -> Response:
        _, session = current(request)
        if session is None:
            return JSONResponse({"error": "log in first"}, status_code=401)
        snap = daemon.snapshot()
        for name, job in snap["jobs"].items():
            job["progress"] = daemon.progress(name) if job["running"] else None
        last = {}
        for name in snap["jobs"]:
            row = daemon.history.last(name)
            if row is not None:
                last[name] = {k: row[k] for k in ("id", "result", "ended", "error", "trigger")}
        return JSONResponse({"now": time.time(), "jobs": snap["jobs"], "last": last})

    return [
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/", overview),
        Route("/destinations", destinations),
        Route("/snapshots", snapshots),
        Route("/history", history),
        Route("/alerts", alerts),
        Route("/run/{job}", run, methods=["POST"]),
        Route("/ui/jobs", jobs),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form (all the dashboard posts), at most 64 KiB, in at most 10 s (a client
    that dribbles its body does not hold the handler); other bodies read as empty."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    body = b""
    try:
        async with asyncio.timeout(FORM_SECONDS):
            async for chunk in request.stream():
                body += chunk
                if len(body) > 65536:
                    return {}
    except TimeoutError:
        return {}
    parsed = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}


def _ts(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
