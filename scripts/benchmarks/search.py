"""search: vector index build/update time and size, query latency and recall, filtered queries, cold CLI.

Builds (once per N, into --workdir) a synthetic store of N papers with clustered 384-dim unit vectors
(topics → subtopics → papers, like real embeddings, not uniform noise), realistic category and date
spreads, then runs, each in a fresh process where it matters:
- `papersys index --rebuild`: full build time, size on disk;
- an incremental update after 5,000 new papers are stored;
- queries without query embedding (perturbed stored vectors): p50/p95, recall@10 against exact numpy search
  over every vector (whose own latency is quoted too), and peak RSS of that process;
- filtered queries at ~1 % selectivity: p95 and whether each returned k results;
- `papersys search TEXT` wall time from a cold process, query embedding included.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from benchmarks.status import _ids, _year_sizes

DIM = 384
CATEGORIES = [f"{a}.{s}" for a in ("cs", "math", "physics", "stat", "q-bio", "econ") for s in "ABCDEFGHIJKLMNOPQRST"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--papers", type=int, default=3_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--update", type=int, default=5_000, help="new papers for the incremental update")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/papersys-bench-search"))
    parser.add_argument("--rebuild", action="store_true", help="generate the store again even if it exists")
    parser.add_argument("--part", choices=("queries",), help="internal: run the query part in this process")


def _vectors(rng: np.random.Generator, n: int, topics: np.ndarray, subtopics: np.ndarray) -> np.ndarray:
    sub = rng.integers(0, len(subtopics), n)
    noise = rng.standard_normal((n, DIM), dtype=np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    scale = rng.uniform(0.35, 0.9, size=(n, 1)).astype(np.float32)
    x = topics[sub // 50] + 0.8 * subtopics[sub] + scale * noise
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _write_year(
    root: Path,
    year: int,
    ids: list[str],
    vectors: np.ndarray,
    rng: np.random.Generator,
    *,
    when: datetime | None = None,
) -> None:
    from papersys.config import ModelConfig
    from papersys.embed.text import hash_texts, render_texts
    from papersys.store.atomic import write_parquet
    from papersys.store.embeddings import embedding_schema
    from papersys.store.layout import Layout
    from papersys.store.metadata import conform

    layout, model, n = Layout(root), ModelConfig(), len(ids)
    cats = np.asarray(CATEGORIES)[rng.integers(0, len(CATEGORIES), size=(n, 2))]
    created = [date(year, 1, 1) + timedelta(days=int(d)) for d in rng.integers(0, 365, n)]
    frame = conform(
        pl.DataFrame(
            {
                "id": ids,
                "title": [f"Paper {i}" for i in ids],
                "abstract": ["An abstract."] * n,
                "authors": [["Ada Lovelace"]] * n,
                "categories": [list(dict.fromkeys(c)) for c in cats.tolist()],
                "primary_category": cats[:, 0].tolist(),
                "created": created,
                "datestamp": [date(year, 12, 31)] * n,
                "source": ["snapshot"] * n,
            }
        ).sort("id")
    )
    path = layout.metadata_file(year)
    if path.exists():  # the update part adds papers to the newest year
        frame = conform(pl.concat([pl.read_parquet(path), frame]).unique("id", keep="last").sort("id"))
    write_parquet(frame, path)
    emb = pl.DataFrame(
        {
            "id": ids,
            "text_hash": hash_texts(render_texts(frame.filter(pl.col("id").is_in(ids)), model.template, model.prefix)),
            "vector": pl.Series(vectors),
            "embedded_at": [when or datetime(2026, 2, 1, tzinfo=UTC)] * n,
        },
        schema=embedding_schema(model.dim, model.dtype),
    ).sort("id")
    target = layout.embedding_file(model.alias, year)
    if target.exists():
        emb = pl.concat([pl.read_parquet(target), emb])
    write_parquet(emb, target)


def build(root: Path, papers: int) -> None:
    from papersys.config import ModelConfig
    from papersys.embed.manifest import configured_manifest
    from papersys.store.embeddings import write_manifest
    from papersys.store.layout import Layout

    model = ModelConfig()
    write_manifest(Layout(root), model.alias, configured_manifest(model, datetime(2026, 1, 1, tzinfo=UTC)))
    rng = np.random.default_rng(1)
    topics, subtopics = _unit(rng, 2000), _unit(rng, 100_000)
    np.save(root / "clusters.npy", np.concatenate([topics, subtopics]))
    for year, n in _year_sizes(papers).items():
        _write_year(root, year, _ids(year, n), _vectors(rng, n, topics, subtopics), rng)
        print(f"built {year}: {n:,} papers", file=sys.stderr, flush=True)


def _cli(root: Path, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    env = {k: v for k, v in os.environ.items() if k != "PAPERSYS_CONFIG"}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "papersys", "--data-dir", str(root), *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"papersys {' '.join(args)} failed: {proc.stderr[-2000:]}")
    return time.perf_counter() - t0, proc


def _queries(root: Path, count: int) -> dict[str, Any]:
    """In a fresh process: latency, recall@10 against exact search, filtered queries, peak RSS."""
    from papersys.config import ModelConfig
    from papersys.search.filters import Filters
    from papersys.search.vectors import VectorIndex
    from papersys.store.layout import Layout

    index = VectorIndex.open(Layout(root), ModelConfig())
    rng = np.random.default_rng(7)
    rows = rng.integers(0, index.manifest.rows, count)
    queries = np.asarray(index.vectors[rows], dtype=np.float32) + 0.3 * _unit(rng, count) / np.sqrt(DIM) * 10
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    latencies, found_rows = [], []
    for q in queries:
        t0 = time.perf_counter()
        found = index.search(q, 10)
        latencies.append(time.perf_counter() - t0)
        found_rows.append(set(found.rows.tolist()))
    selective = Filters.of(["cs.A"])  # one of 120 categories, two per paper: ~1.7 %
    allowed = selective.rows(index)
    filtered, always_k = [], True
    for q in queries[:50]:
        t0 = time.perf_counter()
        found = index.search(q, 10, selective.rows(index))
        filtered.append(time.perf_counter() - t0)
        always_k &= len(found.rows) == 10
    # the search process's peak, taken before the exact scans below read every vector into the page cache
    peak_rss_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    checked = min(50, count)
    scores = np.empty((index.manifest.rows, checked), dtype=np.float32)
    for start in range(0, index.manifest.rows, 262_144):
        block = np.asarray(index.vectors[start : start + 262_144], dtype=np.float32)
        scores[start : start + len(block)] = block @ queries[:checked].T
    hits = sum(len(found_rows[i] & set(np.argpartition(-scores[:, i], 10)[:10].tolist())) for i in range(checked))
    del scores
    exact_times = []
    for q in queries[:5]:
        t0 = time.perf_counter()
        np.argpartition(-(np.asarray(index.vectors) @ q), 10)[:10]
        exact_times.append(time.perf_counter() - t0)
    ms = np.asarray(latencies) * 1000
    return {
        "query_p50_ms": round(float(np.percentile(ms, 50)), 2),
        "query_p95_ms": round(float(np.percentile(ms, 95)), 2),
        "recall_at_10": round(hits / (10 * checked), 4),
        "recall_queries": checked,
        "exact_numpy_median_ms": round(statistics.median(exact_times) * 1000, 1),
        "filtered_share": round(len(allowed) / index.manifest.rows, 4) if allowed is not None else None,
        "filtered_p50_ms": round(float(np.percentile(np.asarray(filtered) * 1000, 50)), 2),
        "filtered_p95_ms": round(float(np.percentile(np.asarray(filtered) * 1000, 95)), 2),
        "filtered_always_k": bool(always_k),
        "peak_rss_mb": peak_rss_mb,
    }


def _disk(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**30, 2)


def run(args: argparse.Namespace) -> dict[str, Any]:
    root = args.workdir / f"data-{args.papers}"
    if args.part == "queries":
        return _queries(root, args.queries)
    if args.rebuild or not (root / ".built").exists():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        build(root, args.papers)
        (root / ".built").write_text("ok\n")
    out: dict[str, Any] = {"papers": args.papers}
    build_s, _ = _cli(root, "index", "--rebuild", "--json")
    out["build_s"] = round(build_s, 1)
    out["index_disk_gb"] = _disk(root / "index" / "minilm")
    # the incremental update: 5,000 new papers of the newest year, stored, then `papersys index`
    rng = np.random.default_rng(int(time.time()))
    clusters = np.load(root / "clusters.npy")
    year = max(int(p.stem) for p in (root / "metadata").glob("*.parquet"))
    ids = [f"{year % 100:02d}12.{94000 + i:05d}" for i in range(args.update)]
    vectors = _vectors(rng, len(ids), clusters[:2000], clusters[2000:])
    _write_year(root, year, ids, vectors, rng, when=datetime.now(UTC))
    update_s, proc = _cli(root, "index", "--json")
    out["update_s"] = round(update_s, 1)
    out["update_report"] = json.loads(proc.stdout)["models"][0]
    child = subprocess.run(
        [
            *(sys.executable, __file__.replace("benchmarks/search.py", "bench.py"), "search", "--part", "queries"),
            *("--papers", str(args.papers), "--workdir", str(args.workdir), "--queries", str(args.queries)),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    out.update(json.loads(child.stdout))
    cold = [_cli(root, "search", "graph neural networks for molecules", "--json")[0] for _ in range(5)]
    out["cli_search_cold_median_s"] = round(statistics.median(cold), 2)
    out["goals"] = {"build_s": 1200, "update_s": 10, "peak_rss_mb": 3072, "query_p95_ms": 20, "recall_at_10": 0.95}
    return out
