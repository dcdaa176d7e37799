"""``sealbox daemon``: the schedules, the run history, the HTTP API, and clean stops.

One asyncio loop runs the HTTP server (uvicorn) and the scheduler; each run is a child process
(:mod:`sealbox.daemon.jobs`). Never two runs of one job at once; different jobs may overlap (the
repository takes concurrent writers). Signals: SIGTERM/SIGINT stop (running jobs get SIGINT and
``stop_timeout_seconds`` to stop safely, then SIGKILL; their history rows say ``interrupted``),
SIGHUP reloads the config (refused, with the old one kept, when the new one is invalid).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp

from sealbox.alerts.report import cluster_notice, job_killed
from sealbox.config.load import config_from_text, read_text
from sealbox.config.models import Config
from sealbox.daemon.jobs import Job, JobOutcome, argv_for, copies_after, jobs_of, outcome_of
from sealbox.daemon.leadership import Leadership
from sealbox.daemon.schedule_plan import first_due, next_due
from sealbox.daemon.watch import Watcher
from sealbox.errors import ConfigError, RunRefusedError
from sealbox.state.files import read_json, write_json
from sealbox.state.history import History
from sealbox.usecases.cluster import TOKEN_ENV
from sealbox.usecases.status import StatusDoc, collect
from sealbox.util.httpserve import Limits, server_config, tls_context

__all__ = ["Daemon"]

log = logging.getLogger("sealbox.daemon")
STATUS_CACHE_SECONDS = 30


@dataclass
class Running:
    run_id: int
    job: str
    trigger: str
    started: float
    proc: asyncio.subprocess.Process | None = None
    task: asyncio.Task[None] | None = None
    token: str | None = None  # the cluster's fencing token the run started under


@dataclass
class Daemon:
    config_path: Path
    config_text: str = ""
    config: Config = field(init=False)
    jobs: dict[str, Job] = field(default_factory=dict)
    due: dict[str, tuple[datetime, str]] = field(default_factory=dict)
    running: dict[str, Running] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    reloads: int = 0
    last_reload_error: str | None = None

    def __post_init__(self) -> None:
        self.config_text = read_text(self.config_path)
        self.config = config_from_text(self.config_text, self.config_path)
        self.history = History(self.config.appliance.state_dir)
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._status_lock = asyncio.Lock()
        self._status: StatusDoc | None = None
        self._status_at = 0.0
        self.leadership = Leadership(self.config)

    # -- schedule ------------------------------------------------------------------------------
    def _plan(self) -> None:
        now = datetime.now(UTC)
        self.jobs = jobs_of(self.config)
        fresh: dict[str, tuple[datetime, str]] = {}
        shared = self.leadership.shared_slots()  # what the cluster's earlier leaders started
        for name, job in self.jobs.items():
            last = max(self.history.last_started(name) or 0.0, shared.get(name, 0.0))
            started = datetime.fromtimestamp(last, UTC) if last else None
            fresh[name] = first_due(job, started, now)
        self.due = fresh

    def reload(self) -> bool:
        """SIGHUP: take the file's new content if it validates; keep the old one otherwise."""
        try:
            text = read_text(self.config_path)
            config = config_from_text(text, self.config_path)
            jobs_of(config)  # refuses a check identity that opens secrets backups
            if config.appliance.state_dir != self.config.appliance.state_dir:
                raise ConfigError("state_dir cannot change while the daemon runs: restart it")
        except ConfigError as exc:
            self.last_reload_error = str(exc)
            log.warning("config reload refused, the previous config stays: %s", exc)
            return False
        old = self.config.daemon
        if (config.daemon.listen, config.daemon.tls_cert, config.daemon.tls_key) != (
            old.listen,
            old.tls_cert,
            old.tls_key,
        ):
            log.warning(
                "[daemon] listen and TLS changes take effect when the daemon restarts;"
                " still serving on %s",
                old.listen,
            )
            config = config.model_copy(
                update={
                    "daemon": config.daemon.model_copy(
                        update={
                            "listen": old.listen,
                            "tls_cert": old.tls_cert,
                            "tls_key": old.tls_key,
                        }
                    )
                }
            )
        self.config_text, self.config = text, config
        self.leadership = self.leadership.reconfigured(config)
        self.reloads += 1
        self.last_reload_error = None
        self._plan()
        self._status = None
        self._write_state()
        log.warning("config reloaded from %s", self.config_path)
        self._wake.set()
        return True

    # -- runs ----------------------------------------------------------------------------------
    def run_now(self, job: str) -> int:
        if self._stop.is_set():
            raise RunRefusedError("the daemon is stopping")
        if job not in self.jobs:
            raise RunRefusedError(
                f"no job {job!r} here (configured: {', '.join(sorted(self.jobs))})"
            )
        if job in self.running:
            raise RunRefusedError(f"{job} is running already (run {self.running[job].run_id})")
        if not self.leadership.leads():
            leader = self.leadership.leader or "no node known"
            raise RunRefusedError(
                f"this node ({self.leadership.node}) stands by in its cluster (leader: {leader}):"
                " run it on the leader"
            )
        return self._start(job, "manual")

    def _start(self, job: str, trigger: str, when: float | None = None) -> int:
        when = when or time.time()  # a scheduled run: the start the cluster's lease recorded
        try:
            run_id = self.history.start(job, trigger, when)
        except sqlite3.Error as exc:
            raise RunRefusedError(f"cannot record the run in the history: {exc}") from exc
        entry = Running(run_id, job, trigger, when, token=self._token())
        self.running[job] = entry
        entry.task = asyncio.get_running_loop().create_task(self._run(entry))
        self._write_state()
        return run_id

    async def _run(self, entry: Running) -> None:
        outcome = JobOutcome("failed", error="did not start")
        try:
            entry.proc = await asyncio.create_subprocess_exec(
                *argv_for(self.config, entry.job),
                env=self._child_env(entry),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # a Ctrl-C at the daemon's terminal is not the job's
            )
            out, err = await entry.proc.communicate(self.config_text.encode())
            code = entry.proc.returncode if entry.proc.returncode is not None else -9
            outcome = outcome_of(entry.job, code, out, err)
            if code < 0 and not self._stop.is_set():
                # Killed, and not by us (the OOM killer, an operator's kill -9): the job had no
                # chance to raise its own alert, so the daemon does.
                outcome.result = "failed"
                outcome.error = (
                    f"the job was killed by signal {-code} ({signal.Signals(-code).name})"
                )
                await asyncio.to_thread(self._alert_killed, entry.job, outcome.error)
        except OSError as exc:
            outcome = JobOutcome("failed", error=f"cannot start the job: {exc}")
        except ConfigError as exc:  # argv_for refused the check identity
            outcome = JobOutcome("failed", error=str(exc))
        except Exception as exc:  # never let one job take the scheduler down
            log.warning("job %s: %r", entry.job, exc)
            outcome = JobOutcome("failed", error=f"internal error: {exc!r}")
        finally:
            if self._stop.is_set() and outcome.result != "success":
                outcome.result = "interrupted"
            self.running.pop(entry.job, None)
            self._status = None
            try:  # a full disk must not leave the job marked running (and never run again)
                self.history.finish(
                    entry.run_id,
                    outcome.result,
                    bytes_=outcome.bytes,
                    files=outcome.files,
                    snapshot=outcome.snapshot,
                    error=outcome.error,
                )
                self.progress_file(entry.run_id).unlink(missing_ok=True)
            except (OSError, sqlite3.Error) as exc:
                log.warning("run %d of %s: history not written: %s", entry.run_id, entry.job, exc)
            job = self.jobs.get(entry.job)
            if job is not None:
                now = datetime.now(UTC)
                self.due[entry.job] = (
                    next_due(job, datetime.fromtimestamp(entry.started, UTC), now),
                    "schedule",
                )
            if (
                outcome.result == "success"
                and "copy" in self.jobs
                and "copy" not in self.running
                and not self._stop.is_set()
                and self.leadership.leads()
                and copies_after(self.config, entry.job)
            ):
                try:
                    self._start("copy", f"after {entry.job}")
                except RunRefusedError as exc:
                    log.warning("copy after %s not started: %s", entry.job, exc)
            self._write_state()  # daemon.json changes when a run starts or ends, or on reload
            self._wake.set()

    def _token(self) -> str | None:
        """The fencing token a run gets: the lease counter, ``-`` in database and command modes
        (the run asks again before it publishes), None without ``[cluster]``."""
        if self.config.cluster is None:
            return None
        token = self.leadership.token
        return str(token) if token is not None else "-"

    def _child_env(self, entry: Running) -> dict[str, str]:
        env = {**os.environ, "SEALBOX_PROGRESS_FILE": str(self.progress_file(entry.run_id))}
        env.pop(TOKEN_ENV, None)
        if entry.token is not None:
            env[TOKEN_ENV] = entry.token
        return env

    def _alert_killed(self, job: str, reason: str) -> None:
        if job not in ("secrets", "system", "recordings"):
            return

        section: Any = getattr(self.config, job)
        job_killed(self.config, job, section.destination if section else "-", reason)

    async def _scheduler(self) -> None:
        while not self._stop.is_set():
            now = datetime.now(UTC)
            for name, (when, trigger) in list(self.due.items()):
                if when > now or name in self.running or name not in self.jobs:
                    continue
                if not self.leadership.leads():
                    continue  # a standby keeps its plan; it is made again if it takes the lead
                # The start is recorded with the lease before the run starts: a new leader
                # never runs this slot again, even if this node dies right now.
                started = time.time()
                if not await asyncio.to_thread(self.leadership.record_start, name, started):
                    self.due[name] = (now + timedelta(seconds=5), trigger)
                    continue
                self.due.pop(name)
                try:
                    self._start(name, trigger, started)
                except RunRefusedError as exc:  # e.g. the history's disk is full
                    log.warning("%s not started: %s; trying again in a minute", name, exc)
                    self.due[name] = (now + timedelta(minutes=1), trigger)
            due = self.due.values() if self.leadership.leads() else []
            waits = [(w - datetime.now(UTC)).total_seconds() for w, _ in due]
            timeout = max(0.2, min([30.0, *waits]))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _watcher(self) -> Watcher:
        """Fresh secrets ([secrets] watch_seconds): a change asks for an earlier secrets run."""

        def due(when: float) -> None:
            # Earlier than the schedule's slot; or moved (later, too) while changes go on: the
            # watch debounces its own request, within max_lag.
            current = self.due.get("secrets")
            if "secrets" in self.jobs and (
                current is None or current[1] == "change" or when < current[0].timestamp()
            ):
                self.due["secrets"] = (datetime.fromtimestamp(when, UTC), "change")
                self._wake.set()

        def started(result: str | None) -> float | None:
            row = self.history.last("secrets", result)
            local = float(row["started"]) if row else None
            if result is not None:
                return local
            # On a cluster, a start by an earlier leader counts too: a change it backed up does
            # not run again when this node takes the lead.
            shared = self.leadership.shared_slots().get("secrets")
            return max(local or 0.0, shared or 0.0) or None

        return Watcher(lambda: self.config, due, lambda: started(None), lambda: started("success"))

    async def _cluster(self) -> None:
        """Look at the cluster every :meth:`Leadership.interval` seconds; on taking the lead,
        plan again (with the slots the earlier leaders recorded) and wake the scheduler."""
        while not self._stop.is_set():
            led, seen = self.leadership.leads(), self.leadership.status()
            try:
                await asyncio.to_thread(self.leadership.tick)
            except Exception as exc:  # never let the cluster look take the daemon down
                log.warning("cluster: %r", exc)
            leads = self.leadership.leads()
            if leads and not led:
                self._plan()
            if self.leadership.status() != seen:  # a new role, leader or lease
                self._status = None
                self._write_state()
                self._wake.set()
            notices = self.leadership.take_notices()
            if notices:
                pairs = [(n.event, n.fields) for n in notices]
                await asyncio.to_thread(cluster_notice, self.config, pairs)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.leadership.interval())

    async def _stop_jobs(self) -> None:
        timeout = self.config.daemon.stop_timeout_seconds
        for entry in list(self.running.values()):
            if entry.proc is not None and entry.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(entry.proc.pid, signal.SIGINT)
        tasks = [e.task for e in self.running.values() if e.task is not None]
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=timeout)
        if pending:
            for entry in list(self.running.values()):
                if entry.proc is not None and entry.proc.returncode is None:
                    log.warning("job %s did not stop within %g s: killed", entry.job, timeout)
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(entry.proc.pid, signal.SIGKILL)
            await asyncio.wait(pending, timeout=10)

    def progress_file(self, run_id: int) -> Path:
        folder = self.config.appliance.state_dir / "runs"
        folder.mkdir(mode=0o700, exist_ok=True)
        return folder / f"{run_id}.progress.json"

    def progress(self, job: str) -> dict[str, Any] | None:
        """What a running backup last reported (bytes and files done, of how many)."""
        entry = self.running.get(job)
        if entry is None:
            return None
        doc: dict[str, Any] = read_json(self.progress_file(entry.run_id))
        return doc or None

    # -- state for status ----------------------------------------------------------------------
    async def status_doc(self) -> StatusDoc:
        """``sealbox status`` as JSON, cached (it contacts the destinations); a run that ends
        clears the cache, so pages show its result at once."""
        async with self._status_lock:
            if self._status is not None and time.time() - self._status_at <= STATUS_CACHE_SECONDS:
                return self._status
            status = await asyncio.to_thread(collect, self.config)
            self._status, self._status_at = status, time.time()
            return status

    def snapshot(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "started": self.started_at,
            "listen": self.config.daemon.listen,
            "config": str(self.config_path),
            "reloads": self.reloads,
            "last_reload_error": self.last_reload_error,
            "cluster": self.leadership.status() if self.config.cluster else None,
            "jobs": {
                name: {
                    "schedule": job.schedule,
                    "next_run": self.due[name][0].timestamp() if name in self.due else None,
                    "running": name in self.running,
                    "run_id": self.running[name].run_id if name in self.running else None,
                    "running_since": self.running[name].started if name in self.running else None,
                }
                for name, job in sorted(self.jobs.items())
            },
        }

    def _write_state(self) -> None:
        """``state_dir/daemon.json`` for ``sealbox status``: a courtesy, never a reason to fail."""
        try:
            write_json(self.config.appliance.state_dir / "daemon.json", self.snapshot())
        except OSError as exc:
            log.warning("daemon.json not written: %s", exc)

    # -- main ----------------------------------------------------------------------------------
    async def serve(self, app: ASGIApp, on_ready: Callable[[], None] | None = None) -> None:
        """Run until SIGTERM, serving ``app`` (the API and dashboard, composed by the caller)."""

        interrupted = self.history.recover()
        if interrupted:
            log.warning("%d run(s) of a previous daemon marked interrupted", interrupted)
        self._plan()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        loop.add_signal_handler(signal.SIGINT, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        host, _, port = self.config.daemon.listen.rpartition(":")
        d = self.config.daemon
        server = _QuietServer(
            server_config(
                app,
                host.strip("[]"),
                int(port),
                Limits(d.header_timeout_seconds, d.max_connections, d.max_connections_per_client),
                tls_context(d.tls_cert, d.tls_key) if d.tls_cert and d.tls_key else None,
                log_level="warning",
                access_log=False,
                lifespan="off",
            )
        )
        listener = _bind(host.strip("[]"), int(port), d.listen)
        web = loop.create_task(server.serve(sockets=[listener]))
        while not server.started:
            if web.done():
                web.result()
                raise ConfigError(f"cannot serve on {d.listen}")
            await asyncio.sleep(0.05)
        self._write_state()
        if on_ready is not None:
            on_ready()
        scheduler = loop.create_task(self._scheduler())
        watcher = loop.create_task(self._watcher().run(self._stop))
        cluster = loop.create_task(self._cluster())
        await self._stop.wait()
        log.warning("stopping: %d job(s) running", len(self.running))
        scheduler.cancel()
        watcher.cancel()
        cluster.cancel()
        await self._stop_jobs()
        if not self.running:  # every run has ended: none can publish under the lease any more
            await asyncio.to_thread(self.leadership.release)
        server.should_exit = True
        await web
        (self.config.appliance.state_dir / "daemon.json").unlink(missing_ok=True)
        self.history.close()
        self.leadership.close()


def _bind(host: str, port: int, listen: str) -> socket.socket:
    """The listening socket, bound here so that a taken port is one clear line, not a trace."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"[daemon] listen {listen}: cannot listen: {exc.strerror}") from exc
    sock.listen(128)
    sock.setblocking(False)
    return sock


class _QuietServer:
    """uvicorn's Server without its own signal handling (the daemon owns SIGTERM and SIGHUP)."""

    def __new__(cls, config: Any) -> Any:
        import uvicorn

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield

        return Server(config)
