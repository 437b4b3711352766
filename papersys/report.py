"""The one shape of every service report: the CLI prints it, ``--json`` dumps it, the job recorder logs it."""

from __future__ import annotations

from typing import Any, Protocol


class Report(Protocol):
    """A service function's result as its readers see it: a JSON-able dict and human summary lines."""

    def to_dict(self) -> dict[str, Any]: ...

    def summary(self) -> list[str]: ...


class JobReport(Report, Protocol):
    """A write job's report: also the figures ``state/jobs.jsonl`` records for the run."""

    def counts(self) -> dict[str, int]: ...
