"""The rich progress bar the CLI shows on a TTY (imported only then: rich costs ~0.1 s)."""

from __future__ import annotations

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
