"""Fixtures for harvest tests: a config pointing at a local OAI server, a runtime that never sleeps."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.oai_server import OAIServer
from support.papers import synthetic_papers

from papersys.config import Config, config_from_mapping
from papersys.runtime import Runtime

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class Sleeps:
    """Records requested sleeps instead of sleeping; a fake monotonic clock advances with them."""

    calls: list[float] = field(default_factory=list)
    now: float = 1000.0

    def sleep(self, seconds: float) -> None:
        self.calls.append(round(seconds, 3))
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def runtime(sleeps: Sleeps) -> Runtime:
    return Runtime(clock=lambda: NOW, sleeper=sleeps.sleep, monotonic=sleeps.monotonic)


def make_config(tmp_path: Path, url: str, **ingest: object) -> Config:
    settings: dict[str, object] = {
        "base_url": url,
        "request_interval_s": 0.0,
        "backoff_base_s": 0.5,
        "max_retries": 3,
        "timeout_s": 5.0,
        "window_days": 60,
    }
    settings.update(ingest)
    return config_from_mapping({"data_dir": "data", "ingest": settings}, base_dir=tmp_path)


@pytest.fixture
def papers() -> list:  # type: ignore[type-arg]
    return synthetic_papers(120, seed=7, start=datetime(2024, 1, 1).date(), days=40)


@pytest.fixture
def server(papers: list) -> Iterator[OAIServer]:  # type: ignore[type-arg]
    with OAIServer(papers, page_size=25) as srv:
        yield srv
