"""The console of every entry point: logging set-up, the progress sink, report output, one-line errors."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from papersys.errors import PapersysError
from papersys.report import Report
from papersys.runtime import LogProgress, Runtime

if TYPE_CHECKING:
    from papersys.cli.rich_progress import RichProgress

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
INTERRUPTED_EXIT = 130


def setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level), format=LOG_FORMAT, stream=sys.stderr)


@contextmanager
def progress_runtime() -> Iterator[Runtime]:
    """A runtime whose progress is a rich bar on a TTY and periodic log lines otherwise."""
    sink: RichProgress | LogProgress
    if sys.stderr.isatty():
        from papersys.cli.rich_progress import RichProgress  # rich costs ~0.1 s: only when a bar is drawn

        sink = RichProgress()
    else:
        sink = LogProgress()
    with sink:
        yield Runtime(progress=sink)


def report_text(report: Report, *, as_json: bool) -> list[str]:
    """The lines that print ``report``: its JSON object, or its human summary."""
    if as_json:
        return [json.dumps(report.to_dict(), indent=2, sort_keys=True, default=str)]
    return list(report.summary())


def print_error(exc: BaseException) -> int:
    """Print ``exc`` as ``error: …`` line(s) on stderr; return the exit status it stands for."""
    if isinstance(exc, KeyboardInterrupt):
        print("error: interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT
    assert isinstance(exc, PapersysError)
    for line in str(exc).splitlines() or [type(exc).__name__]:
        print(f"error: {line}", file=sys.stderr)
    return exc.exit_code
