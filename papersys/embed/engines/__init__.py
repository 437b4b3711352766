"""Embedding engines behind one interface (``base``), and the factory that picks inline or a spawned worker.

Implementations are imported lazily: sentence-transformers costs 8-11 s to import, vllm is only ever
imported inside a spawned worker, the HTTP engine (``backend = "openai"``) imports neither (it always runs
inline: the config refuses isolation = "spawn" for it), and the static (model2vec) engine must not pull in
torch at all.
"""

from __future__ import annotations

from pathlib import Path

from papersys.config import ModelConfig
from papersys.embed.engines.base import Engine, Vectors, check_vectors, resolve_model_path

__all__ = ["Engine", "Vectors", "check_vectors", "inline_engine", "open_engine", "resolve_model_path"]


def inline_engine(model: ModelConfig) -> Engine:
    """The engine of ``model`` in this process (what a spawned worker runs, too)."""
    if model.backend == "vllm":
        from papersys.embed.engines.vllm import VllmEngine

        return VllmEngine(model)
    if model.backend == "openai":
        from papersys.embed.engines.http import OpenAIEngine

        return OpenAIEngine(model)
    if model.backend == "model2vec":
        from papersys.embed.engines.static import StaticEngine

        return StaticEngine(model)
    from papersys.embed.engines.st import SentenceTransformerEngine

    return SentenceTransformerEngine(model)


def open_engine(model: ModelConfig, *, log_path: Path) -> Engine:
    """The engine ``model`` asks for: inline, or in a spawned worker (always for vllm)."""
    if model.backend == "vllm" or model.isolation == "spawn":
        from papersys.embed.engines.worker import WorkerEngine

        return WorkerEngine(model, log_path=log_path)
    return inline_engine(model)
