"""The static engine (``backend = "model2vec"``): a distilled table of token vectors, averaged per text.

It imports model2vec alone (numpy, tokenizers, safetensors): no torch, no sentence-transformers, so it
starts in well under a second and embeds thousands of papers per second on a CPU. ``name`` is the model
directory (``papersys model distill`` writes ``<data_dir>/models/<alias>/`` and prints its absolute path);
a name that is not a directory is handed to model2vec as a hub id (needs a network).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from papersys.config import ModelConfig
from papersys.embed.engines.base import Vectors, checked_dim, no_vectors
from papersys.errors import EngineError


class StaticEngine:
    def __init__(self, model: ModelConfig) -> None:
        self.model = model
        try:
            from model2vec import StaticModel
        except ImportError as exc:
            raise EngineError(model.alias, f"model2vec is not installed ({exc})") from exc
        source = Path(model.name).expanduser()
        where: str | Path = source if source.is_dir() else model.name
        try:
            # normalize and max_length go to each encode call: given here, model2vec warns when they differ
            # from the model's config.json
            self._static: Any = StaticModel.from_pretrained(where, force_download=False)
        except Exception as exc:  # OSError, ValueError, hub errors, safetensors errors: all mean "cannot load"
            raise EngineError(model.alias, f"cannot load {model.name!r}: {type(exc).__name__}: {exc}") from exc
        self._dim = checked_dim(model, int(self._static.dim))

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return no_vectors(self._dim)
        out = self._static.encode(
            list(texts),
            max_length=self.model.max_length,
            batch_size=self.model.batch_size,
            normalize=self.model.normalize,
            show_progress_bar=False,
        )
        return np.asarray(out, dtype=np.float32)  # checked once, where vectors enter the store (autopatch)

    def close(self) -> None:
        self._static = None
