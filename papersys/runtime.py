"""What a service run gets injected: clock, sleep, cancellation, progress and metrics hooks."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from types import TracebackType
from typing import Protocol

from papersys.errors import Interrupted

log = logging.getLogger("papersys.cli.rich_progress")


def cpu_threads(limit: int = 8) -> int:
    """Threads for CPU-bound library work (index builds): the cores this process may use, at most ``limit``."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(limit, cores))


def utc_stamp(moment: datetime | None = None) -> str:
    """``moment`` (now by default) as the ISO-8601 UTC text, to the second, that every record on disk uses."""
    return (moment or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")


class ProgressTask(Protocol):
    def advance(self, amount: float = 1) -> None: ...
    def update(self, *, total: float | None = None, description: str | None = None) -> None: ...
    def close(self) -> None: ...


class Progress(Protocol):
    """Makes progress tasks. The CLI gives a rich bar on a TTY, periodic log lines otherwise."""

    def task(self, description: str, *, total: float | None = None, unit: str = "") -> ProgressTask: ...


class Observer(Protocol):
    """Receives run events; ``papersys.daemon.metrics`` turns them into Prometheus series."""

    def harvest_request(self, outcome: str) -> None: ...
    def harvest_retry(self, outcome: str) -> None: ...
    def harvest_records(self, count: int) -> None: ...
    def embedded(self, model: str, count: int, seconds: float) -> None: ...
    def backlog(self, model: str, count: int) -> None: ...
    def audit_gaps(self, klass: str, count: int) -> None: ...
    def freshness(self, newest: date | None) -> None: ...
    def job_finished(self, job: str, outcome: str, seconds: float) -> None: ...


class _NullTask:
    def advance(self, amount: float = 1) -> None:
        return None

    def update(self, *, total: float | None = None, description: str | None = None) -> None:
        return None

    def close(self) -> None:
        return None


class NullProgress:
    def task(self, description: str, *, total: float | None = None, unit: str = "") -> ProgressTask:
        return _NullTask()


class LogProgress:
    """Logs ``description: done/total (rate/s)`` at most every ``interval_s`` seconds, and at the end."""

    def __init__(self, interval_s: float = 15.0) -> None:
        self.interval_s = interval_s

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def task(self, description: str, *, total: float | None = None, unit: str = "") -> ProgressTask:
        return _LogTask(description, total, unit, self.interval_s)


class _LogTask:
    def __init__(self, description: str, total: float | None, unit: str, interval_s: float) -> None:
        self.description = description
        self.total = total
        self.unit = unit
        self.interval_s = interval_s
        self.done = 0.0
        self.start = self.last = time.monotonic()

    def _line(self) -> str:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        of = f"/{self.total:,.0f}" if self.total else ""
        return f"{self.description}: {self.done:,.0f}{of} {self.unit} ({self.done / elapsed:,.1f}/s)"

    def advance(self, amount: float = 1) -> None:
        self.done += amount
        now = time.monotonic()
        if now - self.last >= self.interval_s:
            self.last = now
            log.info(self._line())

    def update(self, *, total: float | None = None, description: str | None = None) -> None:
        if total is not None:
            self.total = total
        if description is not None:
            self.description = description

    def close(self) -> None:
        if self.done:
            log.info(self._line())


class NullObserver:
    def harvest_request(self, outcome: str) -> None:
        return None

    def harvest_retry(self, outcome: str) -> None:
        return None

    def harvest_records(self, count: int) -> None:
        return None

    def embedded(self, model: str, count: int, seconds: float) -> None:
        return None

    def backlog(self, model: str, count: int) -> None:
        return None

    def audit_gaps(self, klass: str, count: int) -> None:
        return None

    def freshness(self, newest: date | None) -> None:
        return None

    def job_finished(self, job: str, outcome: str, seconds: float) -> None:
        return None


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Runtime:
    clock: Callable[[], datetime] = utcnow
    monotonic: Callable[[], float] = time.monotonic
    cancel: threading.Event = field(default_factory=threading.Event)
    progress: Progress = field(default_factory=NullProgress)
    observer: Observer = field(default_factory=NullObserver)
    trigger: str = "cli"  # "cli" | "schedule"
    sleeper: Callable[[float], None] | None = None  # tests inject a recorder; None = wait on ``cancel``

    def sleep(self, seconds: float) -> None:
        """Sleep, waking early (and raising Interrupted) when the run is cancelled."""
        if seconds <= 0:
            self.check_cancel()
            return
        if self.sleeper is not None:
            self.sleeper(seconds)
        elif self.cancel.wait(seconds):
            raise Interrupted("stopped while waiting")
        self.check_cancel()

    def check_cancel(self) -> None:
        """Call at safe points (between pages, batches, chunks)."""
        if self.cancel.is_set():
            raise Interrupted("stopped at a safe point")
