"""A stand-in ``vllm`` package (no GPU here): the API surface papersys' adapter uses, with checks.

Tests copy this file to ``<tmp>/vllm/__init__.py`` and put ``<tmp>`` on ``sys.path`` (spawned workers
inherit it). ``LLM(...)`` validates and records its constructor kwargs (to ``$STANDIN_VLLM_RECORD``),
``get_tokenizer()`` gives a character-level BERT-like tokenizer, ``embed()`` refuses prompts longer than
``max_model_len`` (as vLLM does) and returns deterministic, unnormalised vectors with ``.outputs.embedding``.
A text containing CRASH makes the process exit with status 7; HANG makes it sleep.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

__version__ = os.environ.get("STANDIN_VLLM_VERSION", "0.11.0")
DIM = 8
CLS, SEP = 101, 102
_COMMON = {"model", "dtype", "max_model_len", "gpu_memory_utilization", "seed", "trust_remote_code"}


def vector_for(token_ids: list[int]) -> list[float]:
    digest = hashlib.sha256(json.dumps(token_ids).encode()).digest()
    return [(b - 127.5) / 10.0 for b in digest[:DIM]]


class Tokenizer:
    def __call__(self, texts: list[str], truncation: bool = False, max_length: int | None = None) -> dict[str, Any]:
        out = []
        for text in texts:
            ids = [CLS, *(ord(c) for c in text), SEP]
            if truncation and max_length is not None and len(ids) > max_length:
                ids = [*ids[: max_length - 1], SEP]
            out.append(ids)
        return {"input_ids": out}


@dataclass
class _Pooled:
    embedding: list[float]


@dataclass
class EmbeddingRequestOutput:
    prompt_token_ids: list[int]
    outputs: _Pooled


class LLM:
    def __init__(self, model: str, **kwargs: Any) -> None:
        mode = {"runner": "pooling"} if tuple(map(int, __version__.split(".")[:2])) >= (0, 10) else {"task": "embed"}
        unknown = set(kwargs) - _COMMON - set(mode)
        if unknown:
            raise TypeError(f"LLM() got unexpected keyword arguments {sorted(unknown)}")
        for key, value in mode.items():
            if kwargs.get(key) != value:
                raise ValueError(f"vllm {__version__} needs {key}={value!r} for embeddings, got {kwargs.get(key)!r}")
        if not os.path.isdir(model):
            raise ValueError(f"no model at {model}")
        if os.environ.get("STANDIN_VLLM_FAIL"):
            raise RuntimeError("CUDA out of memory (stand-in)")
        record = os.environ.get("STANDIN_VLLM_RECORD")
        if record:
            with open(record, "w") as fh:
                json.dump({"model": model, **kwargs, "pid": os.getpid()}, fh)
        self.max_model_len = int(kwargs["max_model_len"])

    def get_tokenizer(self) -> Tokenizer:
        return Tokenizer()

    def embed(self, prompts: list[dict[str, list[int]]], use_tqdm: bool = True) -> list[EmbeddingRequestOutput]:
        outputs = []
        for prompt in prompts:
            ids = prompt["prompt_token_ids"]
            if len(ids) > self.max_model_len:
                raise ValueError(f"prompt of {len(ids)} tokens is longer than max_model_len {self.max_model_len}")
            text = "".join(chr(i) for i in ids[1:-1])
            if "CRASH" in text:
                print("stand-in vllm: simulated crash", file=sys.stderr, flush=True)
                os._exit(7)
            if "HANG" in text:
                print("stand-in vllm: simulated hang", file=sys.stderr, flush=True)
                time.sleep(3600)
            outputs.append(EmbeddingRequestOutput(ids, _Pooled(vector_for(ids))))
        return outputs
