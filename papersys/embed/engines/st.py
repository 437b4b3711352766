"""The sentence-transformers engine; imports sentence_transformers (8-11 s) only when constructed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from papersys.config import ModelConfig
from papersys.embed.engines.base import Vectors, checked_dim, no_vectors, resolve_model_path
from papersys.errors import EngineError


class SentenceTransformerEngine:
    def __init__(self, model: ModelConfig) -> None:
        self.model = model
        try:
            import torch
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging
        except ImportError as exc:
            raise EngineError(model.alias, f"sentence-transformers is not installed ({exc})") from exc
        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # no "Loading weights" bar in logs
        path = resolve_model_path(model.name)
        device = None if model.device == "auto" else model.device  # None: cuda when available, else cpu
        kwargs: dict[str, Any] = {}
        if model.model_dtype != "auto":
            kwargs["model_kwargs"] = {"dtype": getattr(torch, model.model_dtype)}
        try:
            self._st: Any = SentenceTransformer(path, device=device, trust_remote_code=False, **kwargs)
        except Exception as exc:  # OSError, ValueError, RuntimeError, HF errors: all mean "cannot load"
            raise EngineError(model.alias, f"cannot load {model.name!r}: {type(exc).__name__}: {exc}") from exc
        self._st.max_seq_length = model.max_length
        get_dim = getattr(self._st, "get_embedding_dimension", None) or self._st.get_sentence_embedding_dimension
        self._dim = checked_dim(model, get_dim())

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return no_vectors(self._dim)
        out = self._st.encode(
            list(texts),
            batch_size=self.model.batch_size,
            normalize_embeddings=self.model.normalize,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(out, dtype=np.float32)  # checked once, where vectors enter the store (autopatch)

    def close(self) -> None:
        self._st = None
