"""quality: retrieval quality and speed of every configured model and of distilled static candidates.

The corpus is the real papers of ``../shared/fixtures/arxiv-real-thirdparty/legacy`` (2,905, 2025),
``tests/fixtures/search`` (400, all among them) and ``kaggle_sample.jsonl`` beside ``legacy`` (201, 2007):
3,106 titles and abstracts after removing duplicate ids. Each paper's title is the query (with the model's
``query_prefix``), the paper itself the one right answer, searched among all papers embedded with the
model's template: MRR@10, recall@1 and recall@10 over every paper. ``partial`` asks with half of each
title's content words, shuffled (a title half remembered, as in ``relevance``): a template that weights
the title must not only win on exact titles. papers/s is the engine's ``embed`` of ``--speed-sample``
rendered papers (after one warm-up call), timed in the same run.

Candidates are static (model2vec) models distilled from the default MiniLM by ``papersys model distill``
into ``--workdir`` (once; ``--rebuild`` distils again): plain, with store vocabularies, without PCA, with a
title-weighted template. Honesty about vocabulary overfitting: the ``split`` section evaluates on half B
of the corpus only, with the vocabulary taken from half A (``*-vA``) next to the in-corpus one
(``*-vall``, taken from all papers, B included). Vectors are cached in ``--workdir`` per model identity
(quality is deterministic); ``--fresh`` embeds again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

# torch's OpenMP threads spin while waiting; on a busy 2-core host that starves the working ones (see
# tests/conftest.py). Set before torch is imported, for MiniLM and the distillations alike.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[2]
LEGACY = ROOT.parent / "shared" / "fixtures" / "arxiv-real-thirdparty" / "legacy"
KAGGLE = LEGACY.parent / "kaggle_sample.jsonl"
TITLE_TWICE = "{title}\n{title}\n{abstract}"


@dataclass(frozen=True)
class Candidate:
    """A static model to distil from the default MiniLM: ``vocab`` store words from ``vocab_from``."""

    alias: str
    dims: int | None = 256
    vocab: int = 0
    vocab_from: str = "all"  # "all" papers, or "A": half A only (for the split)
    template: str = "{title}\n{abstract}"
    max_length: int = 256


CANDIDATES = {
    c.alias: c
    for c in (
        Candidate("m2v-256"),
        Candidate("m2v-none", dims=None),
        Candidate("m2v-none-tt", dims=None, template=TITLE_TWICE),
        Candidate("m2v-256-v20k-vall", vocab=20000),
        Candidate("m2v-256-v20k-vall-tt", vocab=20000, template=TITLE_TWICE),
        Candidate("m2v-none-v20k-vall-tt", dims=None, vocab=20000, template=TITLE_TWICE),
        Candidate("m2v-256-v20k-vA", vocab=20000, vocab_from="A"),
        Candidate("m2v-256-v20k-vA-tt", vocab=20000, vocab_from="A", template=TITLE_TWICE),
        Candidate("m2v-256-tt", template=TITLE_TWICE),
        Candidate("m2v-256-v5k-vall", vocab=5000),
        Candidate("m2v-256-t3", template="{title}\n{title}\n{title}\n{abstract}"),
        Candidate("m2v-256-tt-512", template=TITLE_TWICE, max_length=512),
    )
}
DEFAULT_CANDIDATES = (
    "m2v-256,m2v-256-tt,m2v-256-t3,m2v-256-tt-512,m2v-none-tt,"
    "m2v-256-v20k-vall,m2v-256-v20k-vall-tt,m2v-256-v20k-vA,m2v-256-v20k-vA-tt"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/papersys-bench-quality"))
    parser.add_argument("--config", type=Path, help="papersys config whose models to score (default: built-in)")
    parser.add_argument(
        "--candidates", default=DEFAULT_CANDIDATES, help=f"comma list of {sorted(CANDIDATES)} ('' for none)"
    )
    parser.add_argument("--speed-sample", type=int, default=512, help="papers embedded to time papers/s")
    parser.add_argument("--rebuild", action="store_true", help="distil the candidates again")
    parser.add_argument("--fresh", action="store_true", help="embed the corpus again (no cached vectors)")


def _corpus() -> pl.DataFrame:
    legacy = pl.read_parquet(LEGACY / "PaperDigestAction__predictions.parquet")
    cols = ["id", "title", "abstract", "authors", "categories", "created", "updated"]
    legacy = legacy.select(
        *cols[:5], pl.col("created").str.to_date(strict=False), pl.col("updated").str.to_date(strict=False)
    )
    extra = pl.read_parquet(ROOT / "tests" / "fixtures" / "search" / "papers_400.parquet").select(cols)
    kaggle = pl.read_ndjson(KAGGLE).select(
        "id",
        "title",
        "abstract",
        pl.concat_list(pl.col("authors")).alias("authors"),
        pl.col("categories").str.split(" "),
        pl.col("update_date").str.to_date().alias("created"),
        pl.col("update_date").str.to_date().alias("updated"),
    )
    both = pl.concat([legacy, extra.cast(legacy.schema), kaggle.cast(legacy.schema)])
    both = both.unique("id", keep="first").sort("id")
    ws = re.compile(r"\s+")
    return both.with_columns(
        pl.col(c).map_elements(lambda t: ws.sub(" ", t).strip(), return_dtype=pl.String) for c in ("title", "abstract")
    )


_STOP_WORDS = """a an and are as at be by for from has in into is it its of on or our over that the their these
this to under using via we what when which while with without"""
_STOP = frozenset(_STOP_WORDS.split())


def _partial(title: str, rng: random.Random) -> str:
    """Half a title's content words (at least two), shuffled: a title half remembered (as in ``relevance``)."""
    words = [w for w in re.findall(r"[\w-]+", title) if w.lower() not in _STOP]
    kept = rng.sample(words, max(2, len(words) // 2)) if len(words) > 2 else words
    return " ".join(kept) or title


def _half_a(corpus: pl.DataFrame) -> np.ndarray:
    """A seeded random half of the papers (half B is the rest)."""
    flags = np.zeros(corpus.height, dtype=bool)
    flags[random.Random(15).sample(range(corpus.height), corpus.height // 2)] = True
    return flags


def _store(root: Path, papers: pl.DataFrame) -> Any:
    """A papersys store of ``papers`` under ``root`` (built once) and its config."""
    sys.path.insert(0, str(ROOT / "tests"))
    from datetime import date

    from support.builders import frame
    from support.search_support import paper_rows

    from papersys.config import config_from_mapping
    from papersys.store.layout import Layout
    from papersys.store.metadata import upsert

    config = config_from_mapping({"data_dir": str(root / "data")}, base_dir=root)
    if not (root / ".built").exists():
        upsert(
            Layout(config.data_dir),
            frame(*paper_rows(papers.with_columns(pl.col("created").fill_null(date(2024, 1, 1))))),
        )
        (root / ".built").write_text("ok\n")
    return config


def _distilled(
    workdir: Path, corpus: pl.DataFrame, candidate: Candidate, *, rebuild: set[Path] | None
) -> tuple[Any, float | None]:
    """The ModelConfig of ``candidate`` (distilled into its store when missing, or again once when ``rebuild``
    is a set: of the model dirs distilled so far) and the distil seconds."""
    from papersys import service
    from papersys.config import ModelConfig
    from papersys.embed.distill import DistillOptions

    papers = corpus.filter(pl.Series(_half_a(corpus))) if candidate.vocab_from == "A" else corpus
    config = _store(workdir / f"store-{candidate.vocab_from}", papers)
    target = f"m2v-{candidate.dims or 'none'}-v{candidate.vocab}-{candidate.vocab_from}"  # shared by templates
    path = config.data_dir / "models" / target
    seconds = None
    if not path.exists() or (rebuild is not None and path not in rebuild):
        options = DistillOptions(dims=candidate.dims, vocabulary_from_store=candidate.vocab, force=True)
        report = service.distill_model(config, source="minilm", target=target, options=options)
        seconds = report.seconds
        if rebuild is not None:
            rebuild.add(path)
    dim = json.loads((path / "manifest.json").read_text())["dims"]
    model = ModelConfig(
        alias=candidate.alias,
        backend="model2vec",
        name=str(path),
        dim=dim,
        batch_size=1024,
        template=candidate.template,
        max_length=candidate.max_length,
    )
    return model, seconds


def _vectors(workdir: Path, model: Any, engine: Any, texts: list[str], kind: str, *, fresh: bool) -> np.ndarray:
    identity = json.dumps(
        [model.model_dump(mode="json"), kind, len(texts), hashlib.sha256("\0".join(texts).encode()).hexdigest()]
    )
    if model.backend == "model2vec":  # the model files, too: a rebuilt candidate has the same config
        identity += str((Path(model.name) / "manifest.json").stat().st_mtime_ns)
    cache = workdir / "vectors" / f"{hashlib.sha256(identity.encode()).hexdigest()[:20]}.npy"
    if cache.exists() and not fresh:
        return np.load(cache)
    cache.parent.mkdir(parents=True, exist_ok=True)
    out = np.concatenate([engine.embed(texts[i : i + 256]) for i in range(0, len(texts), 256)])
    np.save(cache, out)
    return out


def _speed(engine: Any, texts: list[str]) -> float:
    engine.embed(texts[:32])  # warm-up (lazy init, allocator)
    started = time.perf_counter()
    engine.embed(texts)
    return len(texts) / (time.perf_counter() - started)


def _scores(docs: np.ndarray, queries: np.ndarray, rows: np.ndarray) -> dict[str, float]:
    """MRR@10, recall@1, recall@10 of title queries ``rows`` among documents ``rows`` (own paper = answer)."""
    d = docs[rows] / np.linalg.norm(docs[rows], axis=1, keepdims=True)
    q = queries[rows] / np.linalg.norm(queries[rows], axis=1, keepdims=True)
    sims = q @ d.T
    own = np.diag(sims)
    rank = (sims > own[:, None]).sum(axis=1) + 1  # ties count in the paper's favour
    return {
        "mrr10": round(float(np.where(rank <= 10, 1.0 / rank, 0.0).mean()), 4),
        "recall1": round(float((rank == 1).mean()), 4),
        "recall10": round(float((rank <= 10).mean()), 4),
    }


def _score_model(workdir: Path, model: Any, corpus: pl.DataFrame, args: argparse.Namespace) -> dict[str, Any]:
    from papersys.embed.engines import inline_engine
    from papersys.embed.text import render_texts

    started = time.perf_counter()
    engine = inline_engine(model)
    load_s = time.perf_counter() - started
    texts = render_texts(corpus, model.template, model.prefix).to_list()
    titles = [model.query_prefix + t for t in corpus["title"].to_list()]
    rng = random.Random(7)
    partial = [model.query_prefix + _partial(t, rng) for t in corpus["title"].to_list()]
    try:
        speed = _speed(engine, texts[: args.speed_sample])
        docs = _vectors(workdir, model, engine, texts, "docs", fresh=args.fresh)
        queries = _vectors(workdir, model, engine, titles, "queries", fresh=args.fresh)
        partial_q = _vectors(workdir, model, engine, partial, "partial", fresh=args.fresh)
    finally:
        engine.close()
    half_b = ~_half_a(corpus)
    return {
        "backend": model.backend,
        "dim": model.dim,
        "template": model.template,
        "load_s": round(load_s, 2),
        "papers_per_s": round(speed, 1),
        "all": _scores(docs, queries, np.arange(corpus.height)),
        "split_b": _scores(docs, queries, np.flatnonzero(half_b)),
        "partial": _scores(docs, partial_q, np.arange(corpus.height)),
    }


def _models(args: argparse.Namespace, corpus: pl.DataFrame) -> tuple[list[Any], dict[str, float | None]]:
    from papersys.config import load_config

    config = load_config(args.config) if args.config else load_config(None)
    models = [m for m in config.embedding.models if m.enabled]
    distil_s: dict[str, float | None] = {}
    rebuilt: set[Path] | None = set() if args.rebuild else None
    for alias in filter(None, args.candidates.split(",")):
        model, seconds = _distilled(args.workdir, corpus, CANDIDATES[alias], rebuild=rebuilt)
        models.append(model)
        distil_s[alias] = seconds
    return models, distil_s


def run(args: argparse.Namespace) -> dict[str, Any]:
    args.workdir.mkdir(parents=True, exist_ok=True)
    corpus = _corpus()
    models, distil_s = _models(args, corpus)
    results = {m.alias: _score_model(args.workdir, m, corpus, args) for m in models}
    base = results.get("minilm")
    if base:
        for result in results.values():
            result["speed_x_minilm"] = round(result["papers_per_s"] / base["papers_per_s"], 1)
            result["mrr_vs_minilm"] = round(result["all"]["mrr10"] / base["all"]["mrr10"], 4)
            result["split_mrr_vs_minilm"] = round(result["split_b"]["mrr10"] / base["split_b"]["mrr10"], 4)
            result["partial_mrr_vs_minilm"] = round(result["partial"]["mrr10"] / base["partial"]["mrr10"], 4)
    _print_table(results)
    return {
        "papers": corpus.height,
        "split_b_papers": int((~_half_a(corpus)).sum()),
        "distil_s": distil_s,
        "speed_sample": args.speed_sample,
        "models": results,
    }


def _print_table(results: dict[str, dict[str, Any]]) -> None:
    head = (
        "| model | dim | papers/s | x MiniLM | MRR@10 | R@1 | R@10 | % MiniLM MRR | split B MRR@10 | split % "
        "| partial MRR@10 | partial % |"
    )
    print(head, file=sys.stderr)
    print("|" + "---|" * head.count(" | ") + "---|", file=sys.stderr)
    for alias, r in results.items():
        cells = [
            alias, r["dim"], r["papers_per_s"], r.get("speed_x_minilm", ""), r["all"]["mrr10"], r["all"]["recall1"],
            r["all"]["recall10"], r.get("mrr_vs_minilm", ""), r["split_b"]["mrr10"], r.get("split_mrr_vs_minilm", ""),
            r["partial"]["mrr10"], r.get("partial_mrr_vs_minilm", ""),
        ]  # fmt: skip
        print("| " + " | ".join(str(c) for c in cells) + " |", file=sys.stderr)
