"""Export a sentence-transformers model's transformer to ONNX for the query encoder, checked before it is shown.

Only Transformer → Pooling (mean or cls, prompt included) → optional Normalize pipelines can be exported:
pooling and normalisation are redone in numpy by ``encoder.QueryEncoder``. Anything else raises
``EngineError`` and callers keep using the normal engine. The graph comes from torch's TorchScript exporter
(``dynamo=False``: the dynamo exporter needs more than a plain BertModel call gives it), which needs the
``onnx`` package. Runs on the CPU in float32, whatever the model's configured device and dtype.
"""

from __future__ import annotations

import inspect
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from papersys import __version__
from papersys.config import ModelConfig
from papersys.embed.engines.base import resolve_model_path
from papersys.errors import EngineError
from papersys.runtime import utc_stamp
from papersys.search.encoder import QueryEncoder, load_session, load_tokenizer
from papersys.search.encoder_dir import (
    ENCODER_JSON,
    INPUTS,
    MODEL_ONNX,
    TOKENIZER_JSON,
    CheckResult,
    EncoderInfo,
    Pooling,
    new_generation,
    publish,
    sweep,
)

MIN_COSINE = 0.999
OPSET = 17
# Always checked besides the caller's texts: an empty query, a short one, and one past any max_length
# (truncation must cut where sentence-transformers cuts).
PROBES = ("", "graph neural networks", " ".join(["attention is all you need, they said;"] * 200))


def export_query_encoder(model: ModelConfig, directory: Path, *, check_texts: Sequence[str]) -> EncoderInfo:
    """Export ``model``'s transformer to ``directory`` (model.onnx, tokenizer.json, encoder.json), check that
    it gives sentence-transformers' vectors (cosine ≥ 0.999 on ``check_texts``), then swap it in atomically.

    EngineError when the model cannot be exported or fails the check; the previous export stays as it was.
    """
    if not check_texts:
        raise EngineError(model.alias, "exporting a query encoder needs texts to check it with")
    try:
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise EngineError(model.alias, f"sentence-transformers is not installed ({exc})") from exc
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # no "Loading weights" bar in logs
    try:
        st: Any = SentenceTransformer(resolve_model_path(model.name), device="cpu", trust_remote_code=False)
    except Exception as exc:  # OSError, ValueError, HF errors: all mean "cannot load"
        raise EngineError(model.alias, f"cannot load {model.name!r}: {type(exc).__name__}: {exc}") from exc
    st.max_seq_length = model.max_length
    pooling, normalize = _supported(model, st)
    sweep(directory)
    generation = new_generation(directory)
    try:
        inputs = _export_graph(model, st, generation / MODEL_ONNX, torch)
        _save_tokenizer(model, st, generation / TOKENIZER_JSON)
        draft = EncoderInfo(
            model=model.name,
            dim=model.dim,
            max_length=model.max_length,
            pooling=pooling,
            normalize=normalize,
            inputs=inputs,
            onnx_bytes=(generation / MODEL_ONNX).stat().st_size,
            sentence_transformers=_version("sentence_transformers"),
            torch=str(torch.__version__),
            created_at=utc_stamp(),
            papersys_version=__version__,
            check=CheckResult(texts=0, min_cosine=0.0, mean_cosine=0.0),
        )
        info = _check(model, st, generation, draft, [*check_texts, *PROBES])
        (generation / ENCODER_JSON).write_text(info.to_json(), encoding="utf-8")  # last: marks it complete
        publish(generation, directory)
    except BaseException:
        shutil.rmtree(generation, ignore_errors=True)
        raise
    sweep(directory)
    return info


def _supported(model: ModelConfig, st: Any) -> tuple[Pooling, bool]:
    """(pooling, ends in Normalize) when the pipeline is one the query encoder can reproduce."""
    get_dim = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
    if get_dim() != model.dim:
        raise EngineError(model.alias, f"{model.name!r} produces {get_dim()}-dim vectors but dim = {model.dim}")
    names = [type(module).__name__ for module in st]
    if names not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise _unsupported(model, f"its modules are {' → '.join(names)}, not Transformer → Pooling [→ Normalize]")
    prompt = getattr(st, "default_prompt_name", None)
    if prompt and (getattr(st, "prompts", None) or {}).get(prompt):
        raise _unsupported(model, f"it adds the default prompt {prompt!r} to every text")
    if getattr(st[0], "do_lower_case", False):
        raise _unsupported(model, "its Transformer lowercases texts itself (do_lower_case)")
    config = st[1].get_config_dict()
    mode = config.get("pooling_mode")  # sentence-transformers ≥ 6; older versions: one flag per mode
    if mode is None:
        flags = [
            key.removeprefix("pooling_mode_")
            for key, value in config.items()
            if key.startswith("pooling_mode_") and value is True
        ]
        mode = (
            {"mean_tokens": "mean", "cls_token": "cls"}.get(flags[0], flags[0]) if len(flags) == 1 else "+".join(flags)
        )
    if mode not in ("mean", "cls"):
        raise _unsupported(model, f"its pooling is {mode!r}, not 'mean' or 'cls'")
    if config.get("include_prompt", True) is not True:
        raise _unsupported(model, "its pooling leaves the prompt out (include_prompt = false)")
    tokenizer = getattr(st, "tokenizer", None)
    if getattr(tokenizer, "backend_tokenizer", None) is None:
        raise _unsupported(model, "it has no fast (Rust) tokenizer")
    return mode, names[-1] == "Normalize"


def _unsupported(model: ModelConfig, why: str) -> EngineError:
    return EngineError(model.alias, f"cannot export {model.name!r} as an ONNX query encoder: {why}")


def _positional(torch: Any, hf_model: Any, names: Sequence[str]) -> Any:
    """The HF model, callable positionally as the exporter calls it (its forward takes keywords only)."""

    class LastHiddenState(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.model = hf_model

        def forward(self, *tensors: Any) -> Any:
            return self.model(**dict(zip(names, tensors, strict=True))).last_hidden_state

    return LastHiddenState().eval()


def _export_graph(model: ModelConfig, st: Any, path: Path, torch: Any) -> tuple[str, ...]:
    hf_model = st[0].auto_model
    accepted = set(inspect.signature(hf_model.forward).parameters)
    sample = st.tokenizer(["a short text", "a somewhat longer text, to exercise padding"], padding=True)
    names = tuple(name for name in INPUTS if name in sample and name in accepted)
    unknown = set(sample) - set(names)
    if not {"input_ids", "attention_mask"} <= set(names) or unknown:
        raise _unsupported(model, f"its tokenizer gives {sorted(sample)}; the encoder feeds {list(INPUTS)}")
    tensors = tuple(torch.tensor(sample[name], dtype=torch.long) for name in names)
    axes = {name: {0: "batch", 1: "sequence"} for name in (*names, "last_hidden_state")}
    kwargs: dict[str, Any] = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer and deprecation warnings: the check below is the judge
            torch.onnx.export(
                _positional(torch, hf_model, names),
                tensors,
                str(path),
                input_names=list(names),
                output_names=["last_hidden_state"],
                dynamic_axes=axes,
                opset_version=OPSET,
                **kwargs,
            )
    except Exception as exc:  # exporter errors, missing onnx package, unsupported operators
        raise _unsupported(model, f"{type(exc).__name__}: {exc}") from exc
    return names


def _save_tokenizer(model: ModelConfig, st: Any, path: Path) -> None:
    """The model's fast tokenizer as sentence-transformers calls it: cut at max_length, pad to the longest."""
    hf_tokenizer = st.tokenizer
    backend = hf_tokenizer.backend_tokenizer
    backend.enable_truncation(model.max_length, strategy="longest_first", direction="right")
    pad_type = int(getattr(hf_tokenizer, "pad_token_type_id", 0) or 0)
    pad_id = hf_tokenizer.pad_token_id
    if pad_id is None:
        raise _unsupported(model, "its tokenizer has no padding token")
    backend.enable_padding(pad_id=int(pad_id), pad_token=str(hf_tokenizer.pad_token), pad_type_id=pad_type)
    backend.save(str(path))


def _check(model: ModelConfig, st: Any, generation: Path, draft: EncoderInfo, texts: list[str]) -> EncoderInfo:
    """``draft`` with its check result: cosine of ONNX vs sentence-transformers per text; refused below 0.999."""
    encoder = QueryEncoder(
        model, draft, tokenizer=load_tokenizer(generation, draft), session=load_session(generation / MODEL_ONNX)
    )
    ours = encoder.encode(texts)
    encoder.close()
    reference = np.asarray(
        st.encode(texts, batch_size=model.batch_size, convert_to_numpy=True, show_progress_bar=False),
        dtype=np.float32,
    )
    if reference.shape != ours.shape:
        raise _unsupported(model, f"sentence-transformers gives vectors of shape {reference.shape}, ONNX {ours.shape}")
    cosines = (ours * reference).sum(axis=1) / np.maximum(
        np.linalg.norm(ours, axis=1) * np.linalg.norm(reference, axis=1), 1e-12
    )
    worst = int(np.argmin(cosines))
    result = CheckResult(texts=len(texts), min_cosine=float(cosines[worst]), mean_cosine=float(cosines.mean()))
    if not result.min_cosine >= MIN_COSINE:  # also refuses NaN
        raise _unsupported(
            model,
            f"its ONNX vectors differ from sentence-transformers' (cosine {result.min_cosine:.6f} < {MIN_COSINE} "
            f"on text {worst}: {texts[worst][:60]!r})",
        )
    return replace(draft, check=result)


def _version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module.replace("_", "-"))
    except PackageNotFoundError:
        return "unknown"
