"""Daemon/status fixtures: the real MiniLM engine (loaded once per session) behind an engine factory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.embedding import CountingEngine

from papersys.config import ModelConfig
from papersys.embed.engine import Engine


@pytest.fixture(scope="session")
def real_minilm() -> Iterator[Engine]:
    from papersys.embed.st_engine import SentenceTransformerEngine

    engine = SentenceTransformerEngine(ModelConfig())
    yield engine
    engine.close()


@pytest.fixture
def engine_factory(real_minilm: Engine):  # type: ignore[no-untyped-def]
    def factory(_model: ModelConfig, _log: Path) -> Engine:
        return CountingEngine(real_minilm)

    return factory
