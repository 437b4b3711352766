"""The vLLM adapter: an Engine over ``vllm.LLM``'s pooling runner. The only module importing vllm.

It is imported inside a spawned worker only (``engine.open_engine`` never runs vllm inline): vLLM owns
CUDA state and processes of its own, which must not live in the daemon. Texts are tokenised and cut to
``max_length`` tokens here (keeping the start, as sentence-transformers does; vLLM's own
``truncate_prompt_tokens`` keeps the end) and passed as token prompts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from papersys.config import ModelConfig
from papersys.embed.engines.base import Vectors, no_vectors, normalized, resolve_model_path
from papersys.errors import EngineError

RUNNER_SINCE = (0, 10)  # vLLM 0.10 replaced task="embed" by runner="pooling"


def _version(text: str) -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def llm_kwargs(model: ModelConfig, vllm_version: str) -> dict[str, Any]:
    """Constructor arguments for ``vllm.LLM``: pooling mode, and max_model_len and dtype set explicitly."""
    kwargs: dict[str, Any] = {
        "model": resolve_model_path(model.name),
        "dtype": model.model_dtype,
        "max_model_len": model.max_length,
        "gpu_memory_utilization": model.gpu_memory_utilization,
        "seed": 0,
        "trust_remote_code": False,
    }
    if _version(vllm_version) >= RUNNER_SINCE:
        kwargs["runner"] = "pooling"
    else:
        kwargs["task"] = "embed"
    return kwargs


class VllmEngine:
    def __init__(self, model: ModelConfig) -> None:
        self.model = model
        if model.device.startswith("cuda:"):  # vLLM takes the first visible GPU
            os.environ["CUDA_VISIBLE_DEVICES"] = model.device.split(":", 1)[1]
        try:
            import vllm
        except ImportError as exc:
            raise EngineError(model.alias, f"vllm is not installed (uv sync --extra vllm): {exc}") from exc
        kwargs = llm_kwargs(model, str(getattr(vllm, "__version__", "0.0")))
        try:
            self._llm = vllm.LLM(**kwargs)
            self._tokenizer = self._llm.get_tokenizer()
        except Exception as exc:
            raise EngineError(model.alias, f"vLLM cannot load {model.name!r}: {type(exc).__name__}: {exc}") from exc
        probe = self._run(["dimension probe"])
        self._dim = int(probe.shape[1])

    @property
    def dim(self) -> int:
        return self._dim

    def _run(self, texts: Sequence[str]) -> Vectors:
        encoded = self._tokenizer(list(texts), truncation=True, max_length=self.model.max_length)
        prompts = [{"prompt_token_ids": list(ids)} for ids in encoded["input_ids"]]
        try:
            outputs = self._llm.embed(prompts, use_tqdm=False)
        except Exception as exc:
            raise EngineError(self.model.alias, f"vLLM embed failed: {type(exc).__name__}: {exc}") from exc
        array = np.asarray([out.outputs.embedding for out in outputs], dtype=np.float32)
        if self.model.normalize:  # idempotent when vLLM's pooler already normalised
            array = normalized(array)
        return array

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return no_vectors(self._dim)
        return self._run(texts)  # checked once, where vectors enter the store (autopatch)

    def close(self) -> None:
        self._llm = None
