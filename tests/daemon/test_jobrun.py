"""run_job: every outcome lands in jobs.jsonl and in the observer, with a message that makes sense."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from papersys.config import config_from_mapping
from papersys.daemon.metrics import Metrics
from papersys.errors import HarvestError, StoreError
from papersys.jobrun import run_job
from papersys.runtime import Runtime
from papersys.store.jobs import read_jobs
from papersys.store.layout import Layout


@dataclass(frozen=True)
class Done:
    n: int = 3
    extra: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {"n": self.n}


def _raise(exc: BaseException) -> Done:
    raise exc


@pytest.mark.parametrize(
    ("exc", "outcome", "error"),
    [
        (KeyboardInterrupt(), "interrupted", "interrupted (Ctrl-C)"),
        (KeyError("title"), "error", "KeyError: 'title'"),
        (
            HarvestError("window 2024-01-01..2024-01-30", "HTTP 500"),
            "error",
            "harvest of window 2024-01-01..2024-01-30 failed: HTTP 500",
        ),
    ],
)
def test_failures_are_recorded_with_a_meaningful_outcome(
    tmp_path: Path, exc: BaseException, outcome: str, error: str
) -> None:
    config = config_from_mapping({"data_dir": "data"}, base_dir=tmp_path)
    metrics = Metrics()
    with pytest.raises(type(exc)):
        run_job(config, "ingest", lock_names=["metadata"], runtime=Runtime(observer=metrics), work=lambda: _raise(exc))
    (record,) = read_jobs(Layout(config.data_dir).jobs_log)
    assert (record["outcome"], record["error"]) == (outcome, error)
    assert metrics.registry.get_sample_value("papersys_job_runs_total", {"job": "ingest", "outcome": outcome}) == 1


def test_success_records_the_reports_counts(tmp_path: Path) -> None:
    config = config_from_mapping({"data_dir": "data"}, base_dir=tmp_path)
    assert run_job(config, "ingest", lock_names=["metadata"], runtime=Runtime(), work=Done) == Done()
    (record,) = read_jobs(Layout(config.data_dir).jobs_log)
    assert (record["outcome"], record["counts"], record["trigger"]) == ("ok", {"n": 3}, "cli")


def test_an_unusable_data_dir_is_still_counted_as_a_failed_run(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("not a directory")
    config = config_from_mapping({"data_dir": "data"}, base_dir=tmp_path)
    metrics = Metrics()
    with pytest.raises(StoreError, match="data_dir is not a directory"):
        run_job(config, "ingest", lock_names=["metadata"], runtime=Runtime(observer=metrics), work=Done)
    assert metrics.registry.get_sample_value("papersys_job_runs_total", {"job": "ingest", "outcome": "error"}) == 1
