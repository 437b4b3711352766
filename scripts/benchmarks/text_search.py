"""text_search: full-text index build/update time and size, keyword and hybrid query latency at scale.

Builds (once per N, into --workdir) a metadata store of N papers with realistic text: titles of ~12 and
abstracts of ~180 words drawn from the word frequencies of 2,905 real arXiv abstracts, 1-8 authors from a
pool of name parts taken from real author lists, categories and dates as in the `search` bench, and the
same ids as that bench's store. Then, each in a fresh process where it matters:

- `papersys index --text --rebuild`: full build time and size on disk;
- `papersys index --text` after a 5,000-paper day (new papers in the newest year);
- keyword queries (2-4 title words, some with a phrase or `author:`): p50/p95;
- hybrid queries without query embedding (a stored vector stands in for the embedded text): p50/p95. This
  needs the vector index of the `search` bench's store of the same N (``--vectors``), which has the same
  ids; its `embeddings/` and `index/<alias>` are linked into this store.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from benchmarks.search import CATEGORIES, _cli, _disk, _memory, _pct, prepared_store, query_part
from benchmarks.status import _ids, _year_sizes

LEGACY = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "arxiv-real-thirdparty" / "legacy"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--papers", type=int, default=3_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--update", type=int, default=5_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/papersys-bench-text"))
    parser.add_argument("--vectors", type=Path, help="the `search` bench's data dir of the same N (for hybrid)")
    parser.add_argument("--rebuild", action="store_true", help="generate the store again even if it exists")
    parser.add_argument("--part", choices=("queries",), help="internal: run the query part in this process")


class _Words:
    """Samples titles, abstracts and author names from real arXiv text."""

    def __init__(self, rng: np.random.Generator) -> None:
        real = pl.read_parquet(LEGACY / "PaperDigestAction__predictions.parquet")
        counts = Counter(w for a in real["abstract"].to_list() for w in re.findall(r"[A-Za-z][A-Za-z-]+", a))
        self.vocab = np.array(list(counts))
        freq = np.array(list(counts.values()), dtype=np.float64)
        self.p = freq / freq.sum()
        parts = [p for names in real["authors"].to_list() for n in names for p in [n.split()] if len(p) >= 2]
        self.first = np.array(sorted({p[0] for p in parts}))
        self.last = np.array(sorted({p[-1] for p in parts}))
        self.rng = rng

    def texts(self, n: int, mean: int, spread: int) -> list[str]:
        lengths = np.clip(self.rng.normal(mean, spread, n).astype(int), 3, None)
        words = self.vocab[self.rng.choice(len(self.vocab), size=int(lengths.sum()), p=self.p)]
        ends = np.cumsum(lengths)
        return [" ".join(words[e - n_ : e]) for e, n_ in zip(ends.tolist(), lengths.tolist(), strict=True)]

    def authors(self, n: int) -> list[list[str]]:
        counts = self.rng.integers(1, 9, n)
        first = self.first[self.rng.integers(0, len(self.first), int(counts.sum()))]
        last = self.last[self.rng.integers(0, len(self.last), int(counts.sum()))]
        names = [f"{a} {b}" for a, b in zip(first.tolist(), last.tolist(), strict=True)]
        ends = np.cumsum(counts).tolist()
        return [names[e - c : e] for e, c in zip(ends, counts.tolist(), strict=True)]


def _frame(words: _Words, year: int, ids: list[str]) -> pl.DataFrame:
    from papersys.store.metadata import conform

    n, rng = len(ids), words.rng
    cats = np.asarray(CATEGORIES)[rng.integers(0, len(CATEGORIES), size=(n, 2))]
    return conform(
        pl.DataFrame(
            {
                "id": ids,
                "title": words.texts(n, 12, 3),
                "abstract": words.texts(n, 180, 40),
                "authors": words.authors(n),
                "categories": [list(dict.fromkeys(c)) for c in cats.tolist()],
                "primary_category": cats[:, 0].tolist(),
                "created": [date(year, 1, 1) + timedelta(days=int(d)) for d in rng.integers(0, 365, n)],
                "datestamp": [date(year, 12, 31)] * n,
                "source": ["snapshot"] * n,
            }
        ).sort("id")
    )


def build(root: Path, papers: int) -> None:
    from papersys.store.atomic import write_parquet
    from papersys.store.layout import Layout

    words = _Words(np.random.default_rng(1))
    for year, n in _year_sizes(papers).items():
        write_parquet(_frame(words, year, _ids(year, n)), Layout(root).metadata_file(year))
        print(f"built {year}: {n:,} papers", file=sys.stderr, flush=True)


def _link_vectors(root: Path, vectors: Path) -> None:
    """The `search` bench's embeddings and vector index (same ids) inside this store, for hybrid queries."""
    for name in ("embeddings", "index/minilm"):
        target = root / name
        if target.is_symlink() or target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to((vectors / name).resolve(), target_is_directory=True)


def _keyword_queries(root: Path, count: int, rng: np.random.Generator) -> list[str]:
    from papersys.store.layout import Layout

    year = max(Layout(root).metadata_years())
    sample = pl.read_parquet(Layout(root).metadata_file(year), columns=["title", "authors"]).sample(count, seed=7)
    queries = []
    for i, (title, authors) in enumerate(sample.iter_rows()):
        words = title.split()
        start = int(rng.integers(0, max(1, len(words) - 4)))
        picked = words[start : start + int(rng.integers(2, 5))]
        if i % 5 == 3:
            picked = [f'"{" ".join(picked[:2])}"', *picked[2:]]
        elif i % 5 == 4:
            picked = [f'author:"{authors[0]}"', *picked[:1]]
        queries.append(" ".join(picked))
    return queries


def _queries(root: Path, count: int) -> dict[str, Any]:
    """In a fresh process: keyword and hybrid (without query embedding) latency, peak RSS."""
    from papersys import service
    from papersys.config import config_from_mapping
    from papersys.search.query import QueryOptions, Searcher

    config = config_from_mapping({"data_dir": str(root)}, base_dir=root)
    rng = np.random.default_rng(11)
    queries = _keyword_queries(root, count, rng)
    searcher = Searcher(config)
    service.search(config, queries[0], QueryOptions(mode="keyword"), searcher=searcher)  # open the index
    keyword_ms, hits = [], []
    for q in queries:
        t0 = time.perf_counter()
        result = service.search(config, q, QueryOptions(mode="keyword"), searcher=searcher)
        keyword_ms.append((time.perf_counter() - t0) * 1000)
        hits.append(len(result.hits))
    out: dict[str, Any] = {
        "keyword_p50_ms": _pct(keyword_ms, 50),
        "keyword_p95_ms": _pct(keyword_ms, 95),
        "keyword_queries_with_10_hits": sum(h == 10 for h in hits),
    }
    if (root / "index" / "minilm").exists():
        index = searcher.index(config.embedding.models[0])
        stand_ins = np.asarray(index.vectors[rng.integers(0, index.manifest.rows, count)], dtype=np.float32)
        vectors = iter(stand_ins)
        searcher._embed = lambda _model, _text: next(vectors)  # type: ignore[method-assign]  # no query embedding
        hybrid_ms = []
        for q in queries:
            t0 = time.perf_counter()
            service.search(config, q, QueryOptions(mode="hybrid"), searcher=searcher)
            hybrid_ms.append((time.perf_counter() - t0) * 1000)
        out["hybrid_p50_ms"] = _pct(hybrid_ms, 50)
        out["hybrid_p95_ms"] = _pct(hybrid_ms, 95)
    out.update(_memory())
    out["example_queries"] = queries[:6]
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.part == "queries":
        return _queries(args.workdir / f"data-{args.papers}", args.queries)
    root = prepared_store(args, lambda path: build(path, args.papers))
    if args.vectors:
        _link_vectors(root, args.vectors)
    out: dict[str, Any] = {"papers": args.papers, "load_avg_start": os.getloadavg()[0]}
    wall, _, cpu = _cli(root, "index", "--text", "--rebuild", "--json")
    out.update(build_s=round(wall, 1), build_cpu_s=round(cpu, 1), index_disk_gb=_disk(root / "index" / "text"))
    words = _Words(np.random.default_rng(int(time.time())))
    year = max(int(p.stem) for p in (root / "metadata").glob("*.parquet"))
    from papersys.store.layout import Layout
    from papersys.store.metadata import upsert

    fresh = _frame(words, year, [f"{year % 100:02d}12.{94000 + i:05d}" for i in range(args.update)])
    upsert(Layout(root), fresh)
    wall, proc, cpu = _cli(root, "index", "--text", "--json")
    out.update(update_s=round(wall, 1), update_cpu_s=round(cpu, 1), update_report=json.loads(proc.stdout)["text"])
    out.update(query_part("text_search", args))
    out["load_avg_end"] = os.getloadavg()[0]
    out["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    out["goals"] = {"build_s": 1800, "update_s": 30, "keyword_p95_ms": 50, "hybrid_p95_ms": 100}
    return out
