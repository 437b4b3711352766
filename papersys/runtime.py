"""What a service run gets injected: clock, sleep, cancellation, progress and metrics hooks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from papersys.errors import Interrupted


class ProgressTask(Protocol):
    def advance(self, amount: float = 1) -> None: ...
    def update(self, *, total: float | None = None, description: str | None = None) -> None: ...
    def close(self) -> None: ...


class Progress(Protocol):
    """Makes progress tasks. The CLI gives a rich bar on a TTY, periodic log lines otherwise."""

    def task(self, description: str, *, total: float | None = None, unit: str = "") -> ProgressTask: ...


class Observer(Protocol):
    """Receives run events; ``papersys.metrics`` turns them into Prometheus series."""

    def harvest_request(self, outcome: str) -> None: ...
    def harvest_retry(self, outcome: str) -> None: ...
    def harvest_records(self, count: int) -> None: ...
    def embedded(self, model: str, count: int, seconds: float) -> None: ...
    def backlog(self, model: str, count: int) -> None: ...
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
