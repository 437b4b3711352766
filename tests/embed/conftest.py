"""Embedding test fixtures: the real all-MiniLM-L6-v2 engine, loaded once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.embedding import CountingEngine

from papersys.config import ModelConfig
from papersys.embed.engine import Engine


@pytest.fixture(scope="session")
def minilm() -> Iterator[Engine]:
    """The real all-MiniLM-L6-v2 (bundled copy), inline; shared by every test of the session."""
    from papersys.embed.st_engine import SentenceTransformerEngine

    engine = SentenceTransformerEngine(ModelConfig())
    yield engine
    engine.close()


@pytest.fixture
def counting(minilm: Engine) -> CountingEngine:
    return CountingEngine(minilm)
