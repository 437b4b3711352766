"""Embedding test fixtures: the real all-MiniLM-L6-v2 engine, loaded once per session."""

from __future__ import annotations

import pytest
from support.embedding import CountingEngine

from papersys.embed.engines.base import Engine


@pytest.fixture
def counting(minilm: Engine) -> CountingEngine:
    return CountingEngine(minilm)
