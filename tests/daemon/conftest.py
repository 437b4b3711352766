"""Daemon/status fixtures: the real MiniLM engine (loaded once per session) behind an engine factory."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.embedding import CountingEngine

from papersys.config import ModelConfig
from papersys.embed.engines.base import Engine


@pytest.fixture
def engine_factory(minilm: Engine):  # type: ignore[no-untyped-def]
    def factory(_model: ModelConfig, _log: Path) -> Engine:
        return CountingEngine(minilm)

    return factory
