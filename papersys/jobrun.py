"""Wraps every write job (from the CLI or the daemon): take its locks, then record the run in jobs.jsonl
and in the metrics observer, whatever its outcome."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from papersys.config import Config
from papersys.errors import Interrupted, PapersysError
from papersys.report import JobReport
from papersys.runtime import Runtime
from papersys.store import locks
from papersys.store.jobs import append_job
from papersys.store.layout import Layout
from papersys.store.preflight import Estimate
from papersys.store.storage import check_not_vanished, data_dir_in_use, ensure_free_space, storage_guard
from papersys.store.verify import check_data_dir, sweep_state

log = logging.getLogger(__name__)


R = TypeVar("R", bound=JobReport)


def run_job(
    config: Config,
    job: str,
    *,
    lock_names: list[str],
    runtime: Runtime,
    work: Callable[[], R],
    details: dict[str, Any] | None = None,
    needs: Estimate | None = None,
) -> R:
    """Run ``work`` under ``lock_names``; append {job, trigger, start, end, outcome, counts, error} to
    ``state/jobs.jsonl`` and report the outcome to ``runtime.observer``. Errors are re-raised.

    ``needs`` estimates the bytes the job will write: when they plus ``[store] free_space_margin_mb`` do not
    fit on the data dir's file system, the job fails at once with a StorageError (pre-flight)."""
    layout = Layout(config.data_dir)
    start = runtime.clock()
    t0 = time.monotonic()
    outcome, error, counts = "error", None, None
    usable = False  # whether the data dir can take a history line at all
    try:
        check_not_vanished(layout.root)  # a daemon's data dir removed under it: not a first run
        check_data_dir(layout.root, write=True)  # before the locks: they live in the data dir
        with storage_guard(layout.root, "create the data dir"):
            layout.root.mkdir(parents=True, exist_ok=True)  # a first run; from here on it must stay
        usable = True
        with (
            data_dir_in_use(layout.root),
            locks.hold_all(
                layout,
                lock_names,
                timeout_s=config.locks.timeout_s,
                runtime=runtime,
                command=f"papersys {job} ({runtime.trigger})",
            ),
        ):
            sweep_state(layout)  # temp files of runs killed mid-write
            _preflight(config, layout, needs)
            report = work()
        outcome, counts = "ok", report.counts()
        return report
    except (Interrupted, KeyboardInterrupt) as exc:
        outcome, error = "interrupted", str(exc) or "interrupted (Ctrl-C)"
        raise
    except BaseException as exc:
        # our errors carry their own one-line message; anything else needs its type to make sense
        error = str(exc) if isinstance(exc, PapersysError) else f"{type(exc).__name__}: {exc}"
        raise
    finally:
        seconds = time.monotonic() - t0
        record = {
            "job": job,
            "trigger": runtime.trigger,
            "start": start.isoformat(timespec="seconds"),
            "end": runtime.clock().isoformat(timespec="seconds"),
            "seconds": round(seconds, 3),
            "outcome": outcome,
            "counts": counts or {},
            "error": error,
            **(details or {}),
        }
        try:
            if usable:
                append_job(layout.jobs_log, record)
        except Exception as exc:  # the history must never mask the job's own outcome: log it instead
            log.warning("could not record job %s (outcome %s%s): %s", job, outcome, f": {error}" if error else "", exc)
        runtime.observer.job_finished(job, outcome, seconds)


def _preflight(config: Config, layout: Layout, needs: Estimate | None) -> None:
    if needs is None or config.store.free_space_margin_mb < 0:
        return
    need, what = needs(layout)
    ensure_free_space(layout.root, need, margin_mb=config.store.free_space_margin_mb, what=what)
