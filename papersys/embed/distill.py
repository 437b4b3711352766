"""``papersys model distill``: a static model2vec model made from a configured sentence-transformers model.

model2vec runs every token of a vocabulary through the source model once and keeps the (PCA-reduced,
SIF-weighted) vectors: embedding a text is then a table lookup and a mean. The vocabulary is the source
tokenizer's subwords plus, optionally, the most frequent words of the store's own titles and abstracts
(arXiv's terms: "transformer", "qcd", "lensing" become one token each instead of a mean of word pieces).

The model is written into a hidden temp directory beside its target and renamed into
``<data_dir>/models/<alias>/`` only when complete, manifest included: an interrupted distill leaves no
half model (a later distill sweeps the temp directories of dead processes).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import polars as pl

from papersys.config import DEFAULT_TEMPLATE, ModelConfig
from papersys.embed.engines.base import resolve_model_path
from papersys.errors import EngineError, StoreError, UsageError
from papersys.faults import crash_point
from papersys.runtime import Runtime
from papersys.store.atomic import fsync_path, pid_alive, write_json
from papersys.store.layout import Layout

WORD_PATTERN = r"[a-z][a-z0-9]{2,}"  # lower-cased words of 3+ characters (the source model is uncased)
MIN_WORD_COUNT = 2  # a word seen once is a typo or a name as often as a term
# A static model averages token vectors, so a title drowns in its abstract; written three times it weighs
# as much as ~40 abstract words. Measured (scripts/bench.py quality, devdoc/embedding.md): MRR@10 of
# title queries 0.926 -> 0.993 for the static model, and 0.985 -> 0.996 for MiniLM itself.
TITLE_WEIGHTED_TEMPLATE = "{title}\n{title}\n{title}\n{abstract}"
STATIC_BATCH_SIZE = 1024  # model2vec's own default: a static model is bound by per-call overhead below it
# autopatch's chunk (one durable part per year it holds): ~5 s of a static model's work on 2 cores, so a kill
# loses little, while the per-chunk costs (sorting, parts, fsyncs) stay small next to the embedding
STATIC_CHUNK_SIZE = 16_384


@dataclass(frozen=True)
class DistillOptions:
    dims: int | None = 256  # PCA components; None keeps the source's dimension (no PCA)
    vocabulary_from_store: int = 0  # add this many of the store's most frequent new words (0: none)
    subwords: bool = True  # keep the source tokenizer's subword vocabulary
    force: bool = False  # replace an existing model of the same alias


@dataclass(frozen=True)
class DistillReport:
    alias: str
    path: str
    source_alias: str
    source_name: str
    dim: int
    vocabulary_size: int
    added_words: int
    seconds: float
    config_block: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> list[str]:
        return [
            f"distilled {self.alias!r} from {self.source_alias!r} in {self.seconds:.0f}s: {self.dim} dims, "
            f"{self.vocabulary_size} tokens ({self.added_words} words from the store) -> {self.path}",
            "add this to your config to use it:",
            "",
            *self.config_block.splitlines(),
        ]


def distill_model(
    layout: Layout, source: ModelConfig, target: str, options: DistillOptions, runtime: Runtime
) -> DistillReport:
    """Distil ``source`` into ``layout.model_dir(target)``; UsageError for bad input, nothing half-written."""
    _check_input(layout, source, target, options)
    started = time.monotonic()
    path = resolve_model_path(source.name)
    known = _base_vocabulary(source, path) if options.subwords else set()  # word-level: every word counts
    words, papers = store_vocabulary(layout, options.vocabulary_from_store, known)
    task = runtime.progress.task(f"distil {target} from {source.alias}")
    try:
        static = _distill(source, path, words, options)
    finally:
        task.close()
    manifest = {
        "alias": target,
        "source_alias": source.alias,
        "source_name": source.name,
        "dims": int(static.dim),
        "pca": options.dims is not None,
        "vocabulary": {
            "source": f"{source.alias} tokenizer subwords" if options.subwords else "store words only",
            "store_words": len(words),
            "store_papers": papers,
            "size": len(static.tokens),
        },
        "model2vec_version": version("model2vec"),
        "created": runtime.clock().isoformat(),
    }
    _install(layout, target, manifest, static, runtime, force=options.force)
    return DistillReport(
        alias=target,
        path=str(layout.model_dir(target)),
        source_alias=source.alias,
        source_name=source.name,
        dim=int(static.dim),
        vocabulary_size=len(static.tokens),
        added_words=len(words),
        seconds=round(time.monotonic() - started, 1),
        config_block=config_block(layout, source, target, int(static.dim)),
    )


def config_block(layout: Layout, source: ModelConfig, target: str, dim: int) -> str:
    """The ``[[embedding.models]]`` TOML of the distilled model (JSON strings are valid TOML basic strings)."""
    lines = [
        "[[embedding.models]]",
        f"alias = {json.dumps(target)}",
        'backend = "model2vec"',
        f"name = {json.dumps(str(layout.model_dir(target).resolve()))}",
        f"dim = {dim}",
        f"batch_size = {STATIC_BATCH_SIZE}",
        f"chunk_size = {STATIC_CHUNK_SIZE}",
        f"max_length = {source.max_length}",
        f"template = {json.dumps(_static_template(source.template))}",
    ]
    if source.prefix:
        lines.append(f"prefix = {json.dumps(source.prefix)}")
    if source.query_prefix:
        lines.append(f"query_prefix = {json.dumps(source.query_prefix)}")
    return "\n".join(lines) + "\n"


def _static_template(template: str) -> str:
    """The source's template, its title written three times when it is the default one."""
    return TITLE_WEIGHTED_TEMPLATE if template == DEFAULT_TEMPLATE else template


def _check_input(layout: Layout, source: ModelConfig, target: str, options: DistillOptions) -> None:
    if source.backend != "sentence_transformer":
        raise UsageError(
            f"model {source.alias!r} has backend {source.backend!r}: only a sentence_transformer model can be distilled"
        )
    try:
        ModelConfig(alias=target)
    except ValueError:
        raise UsageError(f"--to {target!r}: an alias is letters, digits, '_', '.', '-' (names a directory)") from None
    if options.dims is not None and not 2 <= options.dims <= source.dim:
        raise UsageError(f"--dims {options.dims}: must be from 2 to {source.dim} (the dimension of {source.alias!r})")
    if options.vocabulary_from_store < 0:
        raise UsageError("--vocabulary-from-store must be 0 or more")
    if not options.subwords and options.vocabulary_from_store < (options.dims or 1):
        raise UsageError("--no-subwords needs --vocabulary-from-store N with N at least --dims (the only tokens)")
    if layout.model_dir(target).exists() and not options.force:
        raise UsageError(f"model {target!r} already exists in {layout.model_dir(target)} (--force replaces it)")


def _base_vocabulary(source: ModelConfig, path: str) -> set[str]:
    """The source tokenizer's tokens (words already among them need no vector of their own)."""
    from tokenizers import Tokenizer

    file = Path(path) / "tokenizer.json"
    if not file.is_file():
        raise UsageError(f"model {source.alias!r} ({source.name}) has no local tokenizer.json to distil from")
    return set(Tokenizer.from_file(str(file)).get_vocab())


def store_vocabulary(layout: Layout, count: int, known: set[str]) -> tuple[list[str], int]:
    """The ``count`` most frequent words of the store's titles and abstracts not in ``known``, and how many
    papers they were counted over. Counted per year file, so memory follows the largest year, not the store."""
    files = [layout.metadata_file(year) for year in layout.metadata_years()]
    if count == 0:
        return [], 0
    if not files:
        raise UsageError("--vocabulary-from-store: the store has no papers yet (ingest first)")
    text = pl.concat_str(pl.col("title"), pl.col("abstract"), separator=" ").str.to_lowercase()
    parts, papers = [], 0
    for file in files:
        frame = pl.read_parquet(file, columns=["title", "abstract"])
        papers += frame.height
        words = frame.select(text.str.extract_all(WORD_PATTERN).alias("word")).explode("word").drop_nulls()
        parts.append(words.group_by("word").len())
    counts = (
        pl.concat(parts)
        .group_by("word")
        .agg(pl.col("len").sum())
        .filter(~pl.col("word").is_in(sorted(known)) & (pl.col("len") >= MIN_WORD_COUNT))
        .sort(["len", "word"], descending=[True, False])
        .head(count)
    )
    return counts["word"].to_list(), papers


def _distill(source: ModelConfig, path: str, words: list[str], options: DistillOptions) -> Any:
    # torch's OpenMP threads spin while they wait; on busy cores that starved the working ones: distilling
    # MiniLM's 30k tokens ran at 40-60 tokens/s spinning, 600+ passive (read when torch loads: set it first)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        from model2vec.distill import distill_from_model
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise EngineError(source.alias, f"distillation needs torch and transformers ({exc})") from exc
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        model = AutoModel.from_pretrained(path, trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False, use_fast=True)
    except (OSError, ValueError) as exc:
        raise EngineError(source.alias, f"cannot load {source.name!r}: {type(exc).__name__}: {exc}") from exc
    # model2vec tokenizes each added word with the source tokenizer as it is: all-MiniLM-L6-v2's pads to
    # 128 tokens, so every word took 128 forward positions and its vector was mostly the mean of [PAD]s.
    tokenizer.backend_tokenizer.no_padding()
    try:
        return distill_from_model(
            model,
            tokenizer,  # type: ignore[arg-type]  # a fast tokenizer: use_fast=True
            vocabulary=words or None,
            pca_dims=options.dims,
            token_remove_pattern=r"\[unused\d+\]" if options.subwords else _no_subwords(words),
            quantize_to="float32",  # float16 halves the file but numpy averages it several times slower
        )
    except ValueError as exc:
        raise EngineError(source.alias, f"cannot distil {source.name!r}: {exc}") from exc


def _no_subwords(words: list[str]) -> str:
    """The pattern of the tokens to drop with subwords off: all but the special tokens and ``words``
    (model2vec applies it to the added words too). A word-level model: an unknown word becomes [UNK], which
    model2vec leaves out of the mean (single characters, kept, would outweigh the words: 8 per unknown word)."""
    keep = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return r"^(?!\[[A-Z]+\]$)" + (f"(?!(?:{keep})$)" if keep else "")


def _install(
    layout: Layout, target: str, manifest: dict[str, Any], static: Any, runtime: Runtime, *, force: bool
) -> None:
    """Write the model into a temp dir, then rename it to its place (replacing the old one under --force)."""
    root = layout.models_root
    root.mkdir(parents=True, exist_ok=True)
    sweep_temp_dirs(root)
    tmp = root / f".{target}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    old = tmp.with_suffix(".old")
    try:
        static.save_pretrained(str(tmp))
        write_json(manifest, tmp / "manifest.json")
        for file in tmp.iterdir():
            fsync_path(file)
        fsync_path(tmp)
        runtime.check_cancel()
        crash_point("distill.before_rename")
        final = layout.model_dir(target)
        if final.exists() and force:
            final.rename(old)
        try:
            tmp.rename(final)
        except OSError:
            if old.exists():
                old.rename(final)  # keep the model that was there
            raise
        fsync_path(root)
    except OSError as exc:
        raise StoreError(layout.model_dir(target), f"cannot write the model: {exc.strerror or exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def sweep_temp_dirs(root: Path) -> int:
    """Remove the temp (and replaced) model dirs of distills whose process died; returns how many."""
    removed = 0
    for entry in root.iterdir():
        parts = entry.name.split(".")
        ours = entry.name.startswith(".") and len(parts) >= 4 and parts[-1] in ("tmp", "old") and parts[-3].isdigit()
        if ours and not pid_alive(int(parts[-3])):
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed
