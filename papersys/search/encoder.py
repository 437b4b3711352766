"""The query encoder: a search query's vector from a cold process in about a second, without torch.

``import sentence_transformers`` alone takes 8-11 s, too slow for ``papersys search``. So when the index is
built, the model's transformer is exported once to ONNX (``encoder_export.py``) and checked against
sentence-transformers; a query then needs only onnxruntime and tokenizers. Without a valid export,
``query_encoder`` falls back to the normal engine (same vectors, slow start).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from papersys.config import ModelConfig
from papersys.embed.engines.base import Engine, Vectors
from papersys.errors import EngineError, PapersysError, StoreError
from papersys.search.encoder_dir import ENCODER_JSON, MODEL_ONNX, REBUILD, TOKENIZER_JSON, EncoderInfo, resolve

try:
    import onnxruntime

    _ort: ModuleType | None = onnxruntime
except ImportError:  # a platform without onnxruntime wheels: queries fall back to sentence-transformers
    _ort = None

log = logging.getLogger(__name__)
MAX_THREADS = 8  # a query is one short text: more threads than this only cost start-up and contention


def _threads() -> int:
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        available = os.cpu_count() or 1
    return max(1, min(available, MAX_THREADS))


class QueryEncoder:
    """An ONNX export of a model's transformer + numpy pooling: ``embed(queries)`` like an ``Engine``."""

    def __init__(self, model: ModelConfig, info: EncoderInfo, *, tokenizer: Any, session: Any) -> None:
        self.model = model
        self.info = info
        self._tokenizer = tokenizer
        self._session = session
        self._normalize = info.normalize or model.normalize  # what the sentence-transformers engine does

    @classmethod
    def open(cls, directory: Path, model: ModelConfig) -> QueryEncoder:
        """The export in ``directory``; StoreError when there is none or it is incomplete, ManifestMismatchError
        when it was made for another name, dim or max_length than ``model`` has."""
        if _ort is None:
            raise EngineError(model.alias, "onnxruntime is not installed: no fast query encoder")
        target = resolve(directory)
        try:
            return cls._open_generation(directory, target, model)
        except StoreError:
            if resolve(directory) == target:
                raise
            return cls._open_generation(directory, resolve(directory), model)  # swapped while we read: again

    @classmethod
    def _open_generation(cls, directory: Path, target: Path | None, model: ModelConfig) -> QueryEncoder:
        if target is None or not target.is_dir():
            raise StoreError(directory, "no query encoder exported here", REBUILD)
        info = EncoderInfo.from_json(target / ENCODER_JSON)
        info.check_fits(directory / ENCODER_JSON, model)
        onnx_path = target / MODEL_ONNX
        size = onnx_path.stat().st_size if onnx_path.is_file() else None
        if size != info.onnx_bytes:
            what = "missing" if size is None else f"{size} bytes, expected {info.onnx_bytes}"
            raise StoreError(directory / MODEL_ONNX, f"incomplete export: {what}", REBUILD)
        return cls(model, info, tokenizer=load_tokenizer(target, info), session=load_session(onnx_path))

    @property
    def dim(self) -> int:
        return self.info.dim

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Vectors of the queries ``texts``: ``query_prefix`` + text, no template; float32 (n, dim)."""
        return self.encode([self.model.query_prefix + text for text in texts])

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Vectors of ``texts`` exactly as given (no prefix), in batches of similar length."""
        out = np.empty((len(texts), self.info.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        step = self.model.batch_size
        for start in range(0, len(order), step):
            rows = order[start : start + step]
            out[rows] = self._batch([texts[i] for i in rows])
        return out

    def _batch(self, texts: list[str]) -> Vectors:
        encodings = self._tokenizer.encode_batch(texts)
        columns = {
            "input_ids": [e.ids for e in encodings],
            "attention_mask": [e.attention_mask for e in encodings],
            "token_type_ids": [e.type_ids for e in encodings],
        }
        feed = {name: np.asarray(columns[name], dtype=np.int64) for name in self.info.inputs}
        (hidden,) = self._session.run(["last_hidden_state"], feed)
        return pool(hidden, feed["attention_mask"], self.info.pooling, normalize=self._normalize)

    def close(self) -> None:
        self._session = None


def pool(hidden: Any, mask: Any, pooling: str, *, normalize: bool) -> Vectors:
    """Token vectors (n, seq, dim) → one vector per text, as sentence-transformers' Pooling does."""
    hidden = np.asarray(hidden, dtype=np.float32)
    if pooling == "cls":
        vectors = hidden[:, 0]
    else:
        weights = mask.astype(np.float32)[:, :, None]
        vectors = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
    if normalize:
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return np.ascontiguousarray(vectors, dtype=np.float32)


def load_tokenizer(target: Path, info: EncoderInfo) -> Any:
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(target / TOKENIZER_JSON))
    except Exception as exc:  # tokenizers raises plain Exception for a missing or bad file
        raise StoreError(target / TOKENIZER_JSON, f"cannot load: {exc}", REBUILD) from exc
    tokenizer.enable_truncation(info.max_length)  # saved that way; set again so the file cannot differ
    return tokenizer


def load_session(onnx_path: Path) -> Any:
    assert _ort is not None  # checked by QueryEncoder.open
    options = _ort.SessionOptions()
    options.intra_op_num_threads = _threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: no warnings about unused initialisers on stderr
    try:
        return _ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own exception types (InvalidProtobuf, NoSuchFile, …)
        raise StoreError(onnx_path, f"onnxruntime cannot load it: {exc}", REBUILD) from exc


class FallbackQueryEncoder:
    """The model's normal engine, embedding ``query_prefix`` + text: the same vectors, a slow start."""

    def __init__(self, model: ModelConfig, engine: Engine) -> None:
        self.model = model
        self._engine = engine

    @property
    def dim(self) -> int:
        return self._engine.dim

    def embed(self, texts: Sequence[str]) -> Vectors:
        return self._engine.embed([self.model.query_prefix + text for text in texts])

    def close(self) -> None:
        self._engine.close()


def query_encoder(model: ModelConfig, directory: Path) -> Engine:
    """The ONNX encoder when ``directory`` holds a valid export for ``model``, else the normal engine."""
    if model.backend in ("openai", "model2vec"):  # a server embeds queries itself; a static model starts at once
        from papersys.embed.engines import inline_engine

        return FallbackQueryEncoder(model, inline_engine(model))
    try:
        return QueryEncoder.open(directory, model)
    except PapersysError as exc:
        exported = directory.is_symlink() or directory.exists()
        level = logging.WARNING if exported else logging.INFO  # a broken or stale export is worth a warning
        why = str(exc) if exported else f"no query encoder exported in {directory}"
        log.log(
            level,
            "model %s: %s; embedding queries with sentence-transformers instead (slow to start; "
            "`papersys index` makes queries fast)",
            model.alias,
            why,
        )
    from papersys.embed.engines import inline_engine, open_engine

    if model.backend == "vllm":  # vLLM never runs in this process (DESIGN §4)
        log_path = Path(tempfile.gettempdir()) / f"papersys-query-{model.alias}-{os.getpid()}.log"
        return FallbackQueryEncoder(model, open_engine(model, log_path=log_path))
    return FallbackQueryEncoder(model, inline_engine(model))


def export_query_encoder(model: ModelConfig, directory: Path, *, check_texts: Sequence[str]) -> EncoderInfo:
    """Export ``model`` to ``directory`` for fast queries (imports torch and sentence-transformers)."""
    from papersys.search.encoder_export import export_query_encoder as export

    return export(model, directory, check_texts=check_texts)
