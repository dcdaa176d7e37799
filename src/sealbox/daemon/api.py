"""The daemon's HTTP API (Starlette): status, history, run-now, Prometheus ``/metrics``.

Reads are open on a loopback listener and need the token otherwise; run-now always needs the
token (``Authorization: Bearer ...``, compared in constant time). Without a token file, run-now
is refused: nothing changes state without one. Written down in ``docs/reference/daemon-api.md``.
"""

from __future__ import annotations

import asyncio
import calendar
import hmac
import time
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from sealbox.alerts.notifier import Notifier
from sealbox.daemon.metrics import Metric, render
from sealbox.destinations.probe import last_probes
from sealbox.destinations.sizing import last_reports
from sealbox.errors import RunRefusedError
from sealbox.state.history import RESULTS, History
from sealbox.usecases.copy import CopyLag
from sealbox.usecases.status import StatusDoc

if TYPE_CHECKING:
    from sealbox.config.models import Config
    from sealbox.daemon.service import Daemon

__all__ = ["api_token", "collect_metrics", "make_app"]


def api_token(daemon: Daemon) -> str | None:
    """The token of ``[daemon] token_file`` (read on each use: rotating it needs no restart)."""
    path = daemon.config.daemon.token_file
    if path is None:
        return None
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _authorized(daemon: Daemon, request: Request) -> bool:
    expected = api_token(daemon)
    if expected is None:
        return False
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip(), expected)


def _refuse(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def make_app(daemon: Daemon, extra_routes: Sequence[BaseRoute] = ()) -> ASGIApp:
    """The API, plus ``extra_routes`` (the dashboard's pages, composed by the command that
    starts the daemon, so the daemon does not depend on the dashboard)."""

    def readable(request: Request) -> bool:
        return daemon.config.daemon.on_loopback or _authorized(daemon, request)

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def status(request: Request) -> Response:
        if not readable(request):
            return _refuse("a token is needed on a non-loopback listener", 401)
        doc = await daemon.status_doc()
        return JSONResponse({**doc, "daemon": daemon.snapshot()})

    async def history(request: Request) -> Response:
        if not readable(request):
            return _refuse("a token is needed on a non-loopback listener", 401)
        q = request.query_params
        result = q.get("result")
        if result is not None and result not in RESULTS:
            return _refuse(f"result is one of {', '.join(RESULTS)}", 400)
        try:
            limit = min(int(q.get("limit", "100")), 1000)
            since = float(q["since"]) if "since" in q else None
        except ValueError:
            return _refuse("limit and since are numbers", 400)
        runs = daemon.history.runs(kind=q.get("kind"), result=result, since=since, limit=limit)
        return JSONResponse({"runs": runs})

    async def run_now(request: Request) -> Response:
        if api_token(daemon) is None:
            return _refuse("run-now is disabled: set [daemon] token_file", 403)
        if not _authorized(daemon, request):
            return _refuse("missing or wrong token", 401)
        job = request.path_params["job"]
        if job not in daemon.jobs:
            known = ", ".join(sorted(daemon.jobs))
            return _refuse(f"no job {job!r} here (configured: {known})", 404)
        try:
            run_id = daemon.run_now(job)
        except RunRefusedError as exc:
            return _refuse(str(exc), 409)
        return JSONResponse({"run": run_id, "job": job}, status_code=202)

    async def metrics(request: Request) -> Response:
        if not readable(request):
            return _refuse("a token is needed on a non-loopback listener", 401)
        config = daemon.config
        wanted = config.copies or config.system is not None or config.recordings is not None
        status = await daemon.status_doc() if wanted else None  # copy lag, drills: cached
        text = await asyncio.to_thread(collect_metrics, config, daemon.snapshot(), status)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    return Starlette(
        routes=[
            Route("/healthz", health),
            Route("/api/status", status),
            Route("/api/history", history),
            Route("/api/run/{job}", run_now, methods=["POST"]),
            Route("/metrics", metrics),
            *extra_routes,
        ]
    )


def _unix(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _copy_lags(status: StatusDoc) -> list[tuple[str, CopyLag]]:
    return [(k["kind"], lag) for k in status["kinds"] for lag in k.get("copies", [])]


def collect_metrics(config: Config, snap: dict[str, Any], status: StatusDoc | None = None) -> str:
    """The metrics text from the state files, the daemon's ``snapshot()`` (taken on the
    loop's thread: this runs in a worker thread) and its cached status (copy lag, drills)."""

    state = config.appliance.state_dir
    history = History(state, readonly=True)
    try:
        last_success = Metric(
            "sealbox_last_success_timestamp_seconds",
            "When the last successful run of each job ended (Unix time).",
            "gauge",
        )
        last_run = Metric("sealbox_last_run_timestamp_seconds", "When the last run ended.", "gauge")
        last_ok = Metric("sealbox_last_run_success", "1 if the last run succeeded.", "gauge")
        duration = Metric(
            "sealbox_last_run_duration_seconds", "How long the last finished run took.", "gauge"
        )
        size = Metric("sealbox_last_run_bytes", "Bytes the last successful run added.", "gauge")
        files = Metric("sealbox_last_run_files", "Files (or items) of the last success.", "gauge")
        runs = Metric("sealbox_runs_total", "Runs by job and result.", "counter")
        running = Metric("sealbox_run_in_progress", "1 while a run of the job is going.", "gauge")
        next_run = Metric("sealbox_next_run_timestamp_seconds", "The next scheduled run.", "gauge")
        for job, info in snap["jobs"].items():
            ok = history.last(job, "success")
            if ok is not None:
                last_success.add(ok["ended"], kind=job)
                size.add(ok["bytes"], kind=job)
                files.add(ok["files"], kind=job)
            finished = [r for r in history.runs(kind=job, limit=5) if r["result"] != "running"]
            if finished:
                last_run.add(finished[0]["ended"], kind=job)
                last_ok.add(1 if finished[0]["result"] == "success" else 0, kind=job)
                duration.add(finished[0]["ended"] - finished[0]["started"], kind=job)
            running.add(1 if info["running"] else 0, kind=job)
            next_run.add(info["next_run"], kind=job)
        for (job, result), count in sorted(history.counts().items()):
            if result != "running":
                runs.add(count, kind=job, result=result)
    finally:
        history.close()
    up = Metric("sealbox_destination_up", "1 if the last probe succeeded.", "gauge")
    latency = Metric(
        "sealbox_destination_probe_seconds", "Write plus read time of the last probe.", "gauge"
    )
    probed = Metric("sealbox_destination_probe_timestamp_seconds", "Last probe time.", "gauge")
    free = Metric("sealbox_destination_free_bytes", "Free space seen by the last probe.", "gauge")
    for name, probe in sorted(last_probes(state).items()):
        up.add(1 if probe.get("ok") else 0, destination=name)
        if probe.get("ok"):
            spent = (probe.get("write_ms") or 0) + (probe.get("read_ms") or 0)
            latency.add(spent / 1000, destination=name)
        free.add(probe.get("free"), destination=name)
        when = probe.get("time")
        if when:
            stamp = calendar.timegm(time.strptime(when, "%Y-%m-%dT%H:%M:%SZ"))
            probed.add(stamp, destination=name)
    ratio = Metric(
        "sealbox_destination_capacity_ratio",
        "Capacity (free + used by Sealbox) over the 150%-of-var_dir target; below 1 is short.",
        "gauge",
    )
    days = Metric("sealbox_destination_days_to_full", "Forecast days until full.", "gauge")
    for name, report in sorted(last_reports(state).items()):
        if report.get("available_bytes") is not None and report.get("target_bytes"):
            ratio.add(report["available_bytes"] / report["target_bytes"], destination=name)
        days.add(report.get("days_to_full"), destination=name)
    queued = Metric("sealbox_alerts_undelivered", "Alerts waiting for a channel.", "gauge")
    queued.add(Notifier(config).queued())
    started = Metric("sealbox_daemon_start_timestamp_seconds", "When the daemon started.", "gauge")
    started.add(snap["started"])
    lag = Metric("sealbox_copy_lag_snapshots", "Backups or snapshots not yet at a copy.", "gauge")
    lag_bytes = Metric("sealbox_copy_lag_bytes", "Their size.", "gauge")
    for kind, copy_lag in _copy_lags(status) if status else []:
        if "error" not in copy_lag:
            lag.add(copy_lag["lag_snapshots"], kind=kind, to=copy_lag["to"])
            lag_bytes.add(copy_lag["lag_bytes"], kind=kind, to=copy_lag["to"])
    drilled = Metric(
        "sealbox_drill_timestamp_seconds", "When the newest restore drill ended.", "gauge"
    )
    drill_ok = Metric("sealbox_drill_success", "1 if the newest restore drill passed.", "gauge")
    proven = Metric(
        "sealbox_last_proven_timestamp_seconds",
        "When a restore drill last passed: the backups were last proven restorable.",
        "gauge",
    )
    for entry in status["kinds"] if status else []:
        receipt = entry.get("proven")
        if receipt:
            drilled.add(_unix(receipt["time"]), kind=entry["kind"])
            drill_ok.add(1 if receipt["result"] == "passed" else 0, kind=entry["kind"])
            if receipt["last_passed"]:
                proven.add(_unix(receipt["last_passed"]), kind=entry["kind"])
    leader = Metric(
        "sealbox_cluster_leader",
        "1 if this node leads its cluster ([cluster]), 0 if it stands by.",
        "gauge",
    )
    token = Metric(
        "sealbox_cluster_lease_counter", "The lease's fencing counter it leads with.", "gauge"
    )
    cluster = snap.get("cluster")
    if cluster:
        labels = {"node": cluster["node"], "mode": cluster["mode"]}
        leader.add(1 if cluster["role"] == "leader" else 0, **labels)
        token.add(cluster["token"], **labels)
    return render(
        [
            leader,
            token,
            last_success,
            last_run,
            last_ok,
            duration,
            size,
            files,
            runs,
            running,
            next_run,
            up,
            latency,
            probed,
            free,
            ratio,
            days,
            queued,
            started,
            lag,
            lag_bytes,
            drilled,
            drill_ok,
            proven,
        ]
    )
