"""Progress sinks for the CLI: a rich bar on a TTY, periodic plain log lines otherwise."""

from __future__ import annotations

import logging
import time
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from papersys.runtime import ProgressTask

log = logging.getLogger("papersys.progress")


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        unit = task.fields.get("unit", "")
        return Text(f"{speed:,.1f} {unit}/s" if speed else "", style="progress.data.speed")


class RichProgress:
    """Context manager owning one rich live display for the whole command."""

    def __init__(self, console: Console | None = None) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _RateColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
            transient=False,
        )

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def task(self, description: str, *, total: float | None = None, unit: str = "") -> ProgressTask:
        return _RichTask(self._progress, self._progress.add_task(description, total=total, unit=unit))


class _RichTask:
    def __init__(self, progress: Progress, task_id: object) -> None:
        self._progress = progress
        self._id = task_id

    def advance(self, amount: float = 1) -> None:
        self._progress.advance(self._id, amount)  # type: ignore[arg-type]

    def update(self, *, total: float | None = None, description: str | None = None) -> None:
        self._progress.update(self._id, total=total, description=description)  # type: ignore[arg-type]

    def close(self) -> None:
        self._progress.stop_task(self._id)  # type: ignore[arg-type]


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
