"""``papersys serve``: APScheduler 3 BlockingScheduler running the same service calls as the CLI.

Jobs ``ingest``, ``embed-autopatch``, ``audit`` (with repair) and ``ingest-feeds`` (when feeds are
configured) fire from cron expressions; the HTTP API
([api], web/server.py) answers queries from its own threads meanwhile, so a query never waits for a job; a
failing job is logged (one line for a PapersysError, a traceback for a bug; jobrun.run_job already recorded
and counted it) and the daemon lives
on. SIGTERM/SIGINT set the shared cancel event, so running jobs stop at their next safe point and the daemon
exits 0.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Any

from papersys import service
from papersys.config import Config
from papersys.daemon.cron import check_timezone, cron_trigger
from papersys.daemon.metrics import Metrics
from papersys.errors import Interrupted, PapersysError
from papersys.runtime import LogProgress, NullObserver, Observer, Runtime, utc_stamp
from papersys.store import locks
from papersys.store.atomic import write_json
from papersys.store.layout import Layout
from papersys.store.storage import data_dir_in_use
from papersys.store.verify import check_data_dir

if TYPE_CHECKING:
    from papersys.web.server import ApiServer

log = logging.getLogger(__name__)

INGEST = "ingest"
EMBED = "embed-autopatch"
AUDIT = "audit"
FEEDS = "ingest-feeds"
STARTUP = "startup"


def _ingest(config: Config, runtime: Runtime) -> None:
    service.ingest(config, runtime=runtime)


def _embed(config: Config, runtime: Runtime) -> None:
    service.embed_autopatch(config, runtime=runtime)


def _audit(config: Config, runtime: Runtime) -> None:
    service.audit(config, repair=True, runtime=runtime)  # the last ingest.audit_days, every gap repaired


def _feeds(config: Config, runtime: Runtime) -> None:
    service.ingest_feeds(config, runtime=runtime)


JOBS: dict[str, Callable[[Config, Runtime], None]] = {
    INGEST: _ingest,
    EMBED: _embed,
    AUDIT: _audit,
    FEEDS: _feeds,
}


@dataclass
class Daemon:
    """One ``serve`` process: scheduler, metrics endpoint, daemon.json, signal handling."""

    config: Config
    observer: Observer = field(default_factory=NullObserver)
    cancel: threading.Event = field(default_factory=threading.Event)
    jobs: dict[str, Callable[[Config, Runtime], None]] = field(default_factory=lambda: dict(JOBS))
    metrics: Metrics | None = None  # served (and made the observer) once serve() holds the daemon lock
    metrics_address: str | None = None
    api: ApiServer | None = None  # served beside the scheduler once serve() holds the daemon lock
    api_address: str | None = None
    outcomes: list[tuple[str, str]] = field(default_factory=list)  # (job, ok|error|interrupted) per run
    _started: str = ""
    _job_locks: dict[str, threading.Lock] = field(default_factory=dict)
    _triggers: dict[str, Any] = field(default_factory=dict)
    _running: set[str] = field(default_factory=set)
    _scheduler: Any = None

    @property
    def layout(self) -> Layout:
        return Layout(self.config.data_dir)

    def runtime(self) -> Runtime:
        return Runtime(cancel=self.cancel, observer=self.observer, progress=LogProgress(), trigger="schedule")

    def run_guarded(self, name: str) -> str:
        """Run one scheduled job to its end and return its outcome; never raises (the daemon must outlive
        its jobs), unlike ``jobrun.run_job``, which records a job and re-raises its error."""
        lock = self._job_locks.setdefault(name, threading.Lock())
        # the same job never runs twice at once in this daemon: a cron run firing during the --run-now
        # run of that job is skipped, as APScheduler's max_instances would skip it
        if not lock.acquire(blocking=False):
            log.info("job %s is already running; this run is skipped", name)
            return "skipped"
        try:
            if self.cancel.is_set():
                return "interrupted"
            self._running.add(name)
            self._write_state()
            outcome = "ok"
            try:
                self.jobs[name](self.config, self.runtime())
            except Interrupted:
                outcome = "interrupted"
                log.info("job %s stopped at a safe point", name)
            except PapersysError as exc:  # recorded (if jobs.jsonl can be written) and counted by run_job
                outcome = "error"
                log.error("job %s failed: %s", name, exc)  # one line; the log is the record of last resort
            except Exception:  # a bug: logged with its traceback
                outcome = "error"
                log.exception("job %s failed", name)
            finally:
                self._running.discard(name)
            self.outcomes.append((name, outcome))
            self._write_state()
            return outcome
        finally:
            lock.release()

    def _startup(self) -> None:
        for name in (INGEST, EMBED):
            if self.run_guarded(name) == "interrupted":
                return

    def build(self, *, run_now: bool = False) -> Any:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.blocking import BlockingScheduler

        sched = self.config.scheduler
        scheduler = BlockingScheduler(
            timezone=check_timezone(sched.timezone), executors={"default": ThreadPoolExecutor(max_workers=2)}
        )
        # coalesce: runs missed while the host slept collapse into one; max_instances: never two at once
        options = {"coalesce": True, "max_instances": 1, "misfire_grace_time": sched.misfire_grace_s}
        crons = [(INGEST, sched.ingest_cron), (EMBED, sched.embed_cron), (AUDIT, sched.audit_cron)]
        if self.config.ingest.feeds:  # no feeds configured: no feed job
            crons.append((FEEDS, sched.feed_cron))
        for name, expr in crons:
            self._triggers[name] = cron_trigger(expr, sched.timezone)
            scheduler.add_job(self.run_guarded, self._triggers[name], args=[name], id=name, name=name, **options)
        if run_now:
            scheduler.add_job(self._startup, "date", run_date=datetime.now(UTC), id=STARTUP, name=STARTUP)
        self._scheduler = scheduler
        return scheduler

    def next_runs(self) -> dict[str, str | None]:
        """Next fire time per job, computed from the triggers: asking the scheduler (get_jobs) from a job
        thread would deadlock while APScheduler 3's shutdown holds its job-store lock waiting for that job."""
        now = datetime.now(UTC)
        runs: dict[str, str | None] = {}
        for name, trigger in self._triggers.items():
            nxt = trigger.get_next_fire_time(None, now)
            runs[name] = utc_stamp(nxt) if nxt else None
        return runs

    def _write_state(self) -> None:
        """Refresh daemon.json; best effort: a full disk or a vanished data dir must not stop the daemon."""
        try:
            self._write_state_file()
        except PapersysError as exc:
            log.warning("daemon state not written: %s", exc)

    def _write_state_file(self) -> None:
        write_json(
            {
                "pid": os.getpid(),
                "started": self._started,
                "next_runs": self.next_runs(),
                "running": sorted(self._running),
                "metrics": self.metrics_address,
                "api": self.api_address,
            },
            self.layout.daemon_state,
        )

    def stop(self, signum: int | None = None, _frame: FrameType | None = None) -> None:
        """Ask everything to stop at its next safe point (signal-handler safe: sets events only)."""
        if signum is not None:
            log.info("received %s: stopping at the next safe point", signal.Signals(signum).name)
        self.cancel.set()
        if self._scheduler is not None:
            self._scheduler.wakeup()

    def serve(self, *, run_now: bool = False, install_signals: bool = True) -> list[tuple[str, str]]:
        """Block until stopped; returns the (job, outcome) of every run. Exclusive per data dir."""
        with (
            locks.hold(self.layout, locks.DAEMON, timeout_s=0, command="papersys serve"),
            data_dir_in_use(self.layout.root),  # removed under the daemon: its jobs fail, none recreates it
        ):
            if self.metrics is not None:  # only now: a refused second daemon must not take the port
                self.metrics_address = self._serve_metrics(self.metrics)
                self.observer = self.metrics
                prime_metrics(self.config, self.metrics)
            if self.api is not None:  # likewise: bound only by the daemon that holds the lock
                self.api_address = self.api.start()
            scheduler = self.build(run_now=run_now)
            self._started = utc_stamp()
            if install_signals and threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, self.stop)
                signal.signal(signal.SIGINT, self.stop)
            watcher = threading.Thread(target=self._shutdown_when_cancelled, name="papersys-stop", daemon=True)
            watcher.start()
            from apscheduler.events import EVENT_SCHEDULER_STARTED

            # job runs refresh daemon.json themselves (run_guarded); this covers the start
            scheduler.add_listener(lambda _e: self._write_state(), EVENT_SCHEDULER_STARTED)
            try:
                log.info(
                    "papersys daemon started (pid %d); metrics at %s; API at %s",
                    os.getpid(),
                    self.metrics_address,
                    self.api_address,
                )
                scheduler.start()
            finally:
                if self.api is not None:  # requests in flight finish; then the port is closed
                    self.api.stop()
                with contextlib.suppress(OSError):  # a read-only or vanished data dir: nothing to clean
                    self.layout.daemon_state.unlink(missing_ok=True)
        return self.outcomes

    def _serve_metrics(self, metrics: Metrics) -> str:
        host, port = self.config.metrics.host, self.config.metrics.port
        try:
            bound_host, bound_port = metrics.serve(host, port)
        except OSError as exc:
            raise PapersysError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from exc
        return f"http://{bound_host}:{bound_port}/metrics"

    def _shutdown_when_cancelled(self) -> None:
        self.cancel.wait()
        # wait=True: running jobs see the cancel event and stop at their next safe point
        while not self._scheduler.running:  # a signal may arrive before start() got going
            time.sleep(0.05)
        self._scheduler.shutdown(wait=True)


def prime_metrics(config: Config, observer: Observer) -> None:
    """Freshness and the last audit's gaps as the store holds them now, so a scrape before the first job
    run shows them too. Best effort: a damaged store is reported by the jobs and by status."""
    from papersys.store.atomic import read_json

    service.report_freshness(config, Runtime(observer=observer))
    try:
        saved = read_json(Layout(config.data_dir).audit_state)
    except PapersysError as exc:
        log.warning("last audit not read: %s", exc)
        return
    remaining = saved.get("remaining") if isinstance(saved, dict) else None
    if isinstance(remaining, dict):
        for klass, ids in remaining.items():
            if isinstance(ids, list):
                observer.audit_gaps(str(klass), len(ids))


def run_daemon(config: Config, *, run_now: bool = False) -> list[tuple[str, str]]:
    """Entry point of ``papersys serve``: metrics endpoint (if enabled) + scheduler until SIGTERM."""
    check_data_dir(config.data_dir, write=True)  # a daemon that cannot keep its store must not start
    api = None
    if config.api.enabled:
        from papersys.web.server import ApiServer

        api = ApiServer(config)  # UsageError now, before anything starts, for an exposed host without a token
    daemon = Daemon(config, metrics=Metrics() if config.metrics.enabled else None, api=api)
    started = time.monotonic()
    outcomes = daemon.serve(run_now=run_now)
    log.info("papersys daemon stopped after %.0fs (%d job runs)", time.monotonic() - started, len(outcomes))
    return outcomes
