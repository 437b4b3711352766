"""Embedding test data: a small real-looking corpus, store builders, an engine wrapper that counts texts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from papersys.config import Config, config_from_mapping
from papersys.embed.engines.base import Engine, Vectors
from papersys.store.layout import Layout
from papersys.store.metadata import upsert
from support.builders import frame, row

# Real-looking papers over three years; two pairs are about the same thing, on purpose.
PAPERS: list[tuple[str, str, str]] = [
    (
        "2401.00001",
        "Attention-based transformers for machine translation",
        "We train an encoder-decoder transformer with multi-head self-attention on English-German "
        "translation and improve BLEU over recurrent baselines.",
    ),
    (
        "2401.00002",
        "Self-attention networks for neural machine translation",
        "A sequence-to-sequence model built only from attention layers translates between languages "
        "better than LSTM encoder-decoders.",
    ),
    (
        "2401.00003",
        "Dark matter halo profiles from galaxy rotation curves",
        "We fit NFW and cored profiles to rotation curves of dwarf galaxies and constrain the inner "
        "density slope of dark matter halos.",
    ),
    (
        "2312.00004",
        "Convergence of stochastic gradient descent on non-convex objectives",
        "We prove rates for SGD with decaying step sizes on smooth non-convex functions.",
    ),
    (
        "2312.00005",
        "Superconductivity in twisted bilayer graphene",
        "Transport measurements near the magic angle reveal superconducting domes next to correlated "
        "insulating states.",
    ),
    ("hep-th/9901001", "Black hole entropy from string theory", "Counting D-brane states reproduces the area law."),
]
SIMILAR = ("2401.00001", "2401.00002")
UNRELATED = "2401.00003"


def add_papers(layout: Layout, papers: Sequence[tuple[str, str, str]] = PAPERS, **fields: object) -> None:
    upsert(layout, frame(*(row(pid, title=title, abstract=abstract, **fields) for pid, title, abstract in papers)))


def make_config(root: Path, **model: object) -> Config:
    raw: dict[str, object] = {"data_dir": str(root / "data")}
    if model:
        raw["embedding"] = {"models": [model]}
    return config_from_mapping(raw, base_dir=root)


class CountingEngine:
    """Wraps a real engine: counts texts, never closes the shared model (the session owns it)."""

    def __init__(self, inner: Engine) -> None:
        self.inner = inner
        self.texts: list[str] = []
        self.closed = 0

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.texts.extend(texts)
        return self.inner.embed(texts)

    def close(self) -> None:
        self.closed += 1


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


# golden values of the real all-MiniLM-L6-v2, recorded once (tests/embed/golden_minilm.json)
GOLDEN = json.loads((Path(__file__).resolve().parents[1] / "embed" / "golden_minilm.json").read_text())


def golden_texts() -> list[str]:
    return [g["text"] for g in GOLDEN["vectors"]]


def assert_golden(vectors: np.ndarray) -> None:
    for vec, ref in zip(vectors, GOLDEN["vectors"], strict=True):
        np.testing.assert_allclose(vec[:16], ref["head"], atol=1e-5)
        assert abs(float(vec.sum()) - ref["sum"]) < 1e-4


class HashEngine:
    """A deterministic engine of any dim (for dims the real model cannot produce): vector = f(text hash)."""

    def __init__(self, dim: int, fail_after: int | None = None) -> None:
        self.dim = dim
        self.fail_after = fail_after
        self.texts: list[str] = []

    def embed(self, texts: Sequence[str]) -> Vectors:
        from papersys.errors import EngineError

        if self.fail_after is not None and len(self.texts) + len(texts) > self.fail_after:
            raise EngineError("hash", "worker (pid 1) exited with status 7")
        self.texts.extend(texts)
        return np.stack([hash_vector(t, self.dim) for t in texts]) if texts else np.empty((0, self.dim), np.float32)

    def close(self) -> None:
        return None


def hash_vector(text: str, dim: int) -> np.ndarray:
    import hashlib

    raw = hashlib.shake_128(text.encode()).digest(dim)
    vec = np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 127.5
    return vec / np.linalg.norm(vec)
