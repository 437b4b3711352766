"""relevance: ranking quality of keyword, semantic and hybrid search on real arXiv papers.

Builds (once, into --workdir) a store of the real papers in ``../shared/fixtures/arxiv-real-thirdparty/legacy``
(2,905 titles and abstracts with authors and categories) and ``tests/fixtures/search`` (400 more), embeds
them with the real all-MiniLM-L6-v2 and builds both indexes. Then, in each mode:

(a) known item: a paper's title is the query and the paper the answer — MRR@10 and recall@10, for the exact
    title, a paraphrase (stop words dropped, the remaining words in a shuffled order), a partial title (half
    its content words, shuffled) and a mistyped title (two of its longer words with a typing slip each: two
    letters swapped, one dropped or one doubled), and their mean;
(b) authors: a real author name with at least two papers here → precision@10 of that author's papers
    (of min(10, their paper count)), for the bare name and for ``author:"Name"``;
(c) ids and acronyms: a bare (and a versioned) arXiv id → the paper at rank 1; an acronym that appears in
    exactly one title (``STORY2GAME``, ``RAFT``, …) → MRR@10 of that paper.

``--sweep`` also scores hybrid's reciprocal-rank-fusion constant, candidate depth and keyword title boost
on the partial-title known-item queries: how the defaults in ``[search]`` were chosen.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import time
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

ROOT = Path(__file__).resolve().parents[2]
LEGACY = ROOT.parent / "shared" / "fixtures" / "arxiv-real-thirdparty" / "legacy"
MODES = ("keyword", "semantic", "hybrid")
_STOP_WORDS = """a an and are as at be by for from has in into is it its of on or our over that the their these
this to under using via we what when which while with without"""
STOP = frozenset(_STOP_WORDS.split())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/papersys-bench-relevance"))
    parser.add_argument("--known", type=int, default=600, help="known-item queries (papers sampled)")
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--sweep", action="store_true", help="also score fusion/boost parameter choices")


def _corpus() -> pl.DataFrame:
    legacy = pl.read_parquet(LEGACY / "PaperDigestAction__predictions.parquet")
    legacy = legacy.select(
        "id",
        "title",
        "abstract",
        "authors",
        "categories",
        pl.col("created").str.to_date(strict=False),
        pl.col("updated").str.to_date(strict=False),
    )
    extra = pl.read_parquet(ROOT / "tests" / "fixtures" / "search" / "papers_400.parquet").select(legacy.columns)
    both = pl.concat([legacy, extra.cast(legacy.schema)]).unique("id", keep="first").sort("id")
    ws = re.compile(r"\s+")
    return both.with_columns(
        pl.col("title").map_elements(lambda t: ws.sub(" ", t).strip(), return_dtype=pl.String),
        pl.col("abstract").map_elements(lambda t: ws.sub(" ", t).strip(), return_dtype=pl.String),
    )


def _build(root: Path, corpus: pl.DataFrame) -> Any:
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    from support.builders import frame
    from support.search_support import paper_rows

    from papersys import service
    from papersys.config import config_from_mapping
    from papersys.store.layout import Layout
    from papersys.store.metadata import upsert

    config = config_from_mapping({"data_dir": str(root / "data")}, base_dir=root)
    if not (root / ".built").exists():
        rows = paper_rows(corpus.with_columns(pl.col("created").fill_null(date(2024, 1, 1))))
        upsert(Layout(config.data_dir), frame(*rows))
        service.embed_autopatch(config)
        (root / ".built").write_text("ok\n")
    service.index(config)  # both indexes current (rebuilt when this papersys reads another format)
    return config


def _content_words(title: str) -> list[str]:
    return [w for w in re.findall(r"[\w-]+", title) if w.lower() not in STOP]


def _paraphrase(title: str, rng: random.Random) -> str:
    """Stop words dropped, the rest shuffled."""
    words = _content_words(title)
    rng.shuffle(words)
    return " ".join(words) or title


def _partial(title: str, rng: random.Random) -> str:
    """Half the content words (at least two), shuffled: a title half remembered."""
    words = _content_words(title)
    kept = rng.sample(words, max(2, len(words) // 2)) if len(words) > 2 else words
    return " ".join(kept) or title


def _typo(word: str, rng: random.Random) -> str:
    """One typing slip inside ``word`` (its first letter kept): two neighbours swapped, a letter dropped or
    doubled."""
    at = rng.randrange(1, len(word) - 1)
    slip = rng.choice(("swap", "drop", "double"))
    if slip == "swap" and word[at] != word[at + 1]:
        return word[:at] + word[at + 1] + word[at] + word[at + 2 :]
    if slip == "drop":
        return word[:at] + word[at + 1 :]
    return word[:at] + word[at] + word[at:]


def _mistyped(title: str, rng: random.Random) -> str:
    """The title typed with a slip in two of its words of five or more letters (one if it has only one)."""
    words = title.split(" ")
    long = [i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha()]
    for i in rng.sample(long, min(2, len(long))):
        words[i] = _typo(words[i], rng)
    return " ".join(words)


VARIANTS = {
    "exact": lambda title, _rng: title,
    "paraphrased": _paraphrase,
    "partial": _partial,
    "mistyped": _mistyped,
}


def _rank(hits: list[str], answer: str) -> int | None:
    return hits.index(answer) + 1 if answer in hits else None


def _known_item(
    search: Any, papers: list[dict[str, Any]], mode: str, rng_seed: int, variants: tuple[str, ...] = tuple(VARIANTS)
) -> dict[str, float]:
    rng = random.Random(rng_seed)
    out: dict[str, float] = {}
    for variant in variants:
        ranks = [_rank(search(VARIANTS[variant](p["title"], rng), mode, 10), p["id"]) for p in papers]
        out[f"{variant}_mrr10"] = round(statistics.fmean(1 / r if r else 0.0 for r in ranks), 4)
        out[f"{variant}_recall10"] = round(sum(r is not None for r in ranks) / len(ranks), 4)
    out["mean_mrr10"] = round(statistics.fmean(out[f"{v}_mrr10"] for v in variants), 4)
    return out


def _authors(
    search: Any, by_author: dict[str, set[str]], paper_authors: dict[str, list[str]], mode: str
) -> dict[str, float]:
    out = {}
    for variant in ("bare", "field"):
        precisions = []
        for name, ids in by_author.items():
            query = name if variant == "bare" else f'author:"{name}"'
            hits = search(query, mode, 10)
            want = min(10, len(ids))
            good = sum(1 for h in hits[:want] if name in paper_authors.get(h, ()))
            precisions.append(good / want)
        out[f"{variant}_precision10"] = round(statistics.fmean(precisions), 4)
    return out


def _ids_and_acronyms(
    search: Any, papers: list[dict[str, Any]], acronyms: dict[str, str], mode: str
) -> dict[str, float]:
    first = [search(p["id"] + "v1", mode, 3)[:1] == [p["id"]] for p in papers[:200]]
    ranks = [_rank(search(acronym, mode, 10), paper_id) for acronym, paper_id in acronyms.items()]
    return {
        "id_first": round(sum(first) / len(first), 4),
        "acronym_mrr10": round(statistics.fmean(1 / r if r else 0.0 for r in ranks), 4),
        "acronym_recall10": round(sum(r is not None for r in ranks) / max(1, len(ranks)), 4),
    }


def _acronyms(corpus: pl.DataFrame) -> dict[str, str]:
    """Upper-case tokens (3+ letters, digits allowed) that occur in exactly one title and no abstract."""
    seen: dict[str, set[str]] = defaultdict(set)
    for p in corpus.iter_rows(named=True):
        for token in set(re.findall(r"\b[A-Z][A-Z0-9]{2,}[A-Za-z0-9]*\b", p["title"])):
            seen[token].add(p["id"])
    lowered = " ".join(corpus["abstract"].to_list()).lower()
    single = {t: next(iter(ids)) for t, ids in seen.items() if len(ids) == 1}
    return {t: i for t, i in sorted(single.items()) if lowered.count(t.lower()) <= 1}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from papersys import service
    from papersys.search.query import QueryOptions, Searcher

    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.rebuild:
        (args.workdir / ".built").unlink(missing_ok=True)
    corpus = _corpus()
    began = time.perf_counter()
    config = _build(args.workdir, corpus)
    searchers: dict[Any, Any] = {}
    vectors: dict[str, Any] = {}
    encoder = Searcher(config)

    def embed(model: Any, text: str) -> Any:
        if text not in vectors:
            vectors[text] = Searcher._embed(encoder, model, text)
        return vectors[text]

    def search(query: str, mode: str, k: int, settings: Any = None) -> list[str]:
        settings = settings or config.search
        key = (settings.rrf_k, settings.hybrid_depth, settings.keyword_weight)
        if key not in searchers:  # one per setting: each keeps its indexes and query encoder open
            searchers[key] = Searcher(config.model_copy(update={"search": settings}))
            searchers[key]._embed = embed  # type: ignore[method-assign]  # the sweep repeats the same queries
        searcher = searchers[key]
        options = QueryOptions(k=k, mode=mode)
        return [h.paper.id for h in service.search(searcher.config, query, options, searcher=searcher).hits]

    rows = list(corpus.iter_rows(named=True))
    known = random.Random(3).sample(rows, min(args.known, len(rows)))
    by_author: dict[str, set[str]] = defaultdict(set)
    for p in rows:
        for name in p["authors"]:
            by_author[name].add(p["id"])
    multi = {n: ids for n, ids in by_author.items() if len(ids) >= 2}
    paper_authors = {p["id"]: p["authors"] for p in rows}
    acronyms = _acronyms(corpus)
    out: dict[str, Any] = {
        "papers": len(rows),
        "known_item_queries": len(known),
        "authors_with_2plus_papers": len(multi),
        "acronym_queries": len(acronyms),
        "build_s": round(time.perf_counter() - began, 1),
        "modes": {},
    }
    for mode in MODES:
        t0 = time.perf_counter()
        out["modes"][mode] = {
            "known_item": _known_item(search, known, mode, 5),
            "authors": _authors(search, multi, paper_authors, mode),
            "ids_acronyms": _ids_and_acronyms(search, known, acronyms, mode),
            "seconds": round(time.perf_counter() - t0, 1),
        }
    if args.sweep:
        out["sweep"] = _sweep(config, search, known)
    return out


def _sweep(config: Any, search: Any, known: list[dict[str, Any]]) -> dict[str, float]:
    """Known-item MRR@10 (mean of the variants) of hybrid for each fusion constant, keyword weight and depth,
    and of keyword for each title boost: how the defaults in ``[search]`` were chosen."""
    from papersys.search import keyword

    results: dict[str, float] = {}
    sample = known[:200]
    for rrf_k in (10, 30, 60):
        for weight in (1.0, 1.5, 2.0, 3.0):
            for depth in (50, 100):
                settings = config.search.model_copy(
                    update={"rrf_k": rrf_k, "hybrid_depth": depth, "keyword_weight": weight}
                )
                scored = _known_item(lambda q, m, k, s=settings: search(q, m, k, s), sample, "hybrid", 5)
                results[f"hybrid rrf_k={rrf_k} keyword_weight={weight} depth={depth}"] = scored["mean_mrr10"]
    default = keyword.TITLE_BOOST
    try:
        for boost in (1.0, 2.0, 3.0):
            keyword.TITLE_BOOST = boost
            scored = _known_item(search, sample, "keyword", 5)
            results[f"keyword title_boost={boost}"] = scored["mean_mrr10"]
    finally:
        keyword.TITLE_BOOST = default
    return results
