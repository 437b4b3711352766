"""search: vector index build/update time and size, query latency and recall, filtered queries, cold CLI.

Builds (once per N, into --workdir) a synthetic store of N papers with clustered 384-dim unit vectors and
realistic category and date spreads, then runs, each in a fresh process where it matters. The vectors are
shaped like real ones: the real all-MiniLM-L6-v2 embeds the 2,905 real abstracts of the shared fixtures
once (cached in --workdir), and their mean and covariance (90 % of the variance in ~170 directions) drive
a three-level mixture: mean + topic + subtopic + paper offsets, each Gaussian with the real covariance
scaled to 50/30/20 % of the variance (2,000 topics, 100,000 subtopics). Random pairs then have the real
mean cosine (~0.23); same-subtopic papers ~0.85, same-topic ~0.6.
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
from collections.abc import Callable
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


FRACTIONS = (0.5, 0.3, 0.2)  # variance of topic, subtopic and paper offsets
TOPICS, SUBTOPICS = 2_000, 100_000


class Shape:
    """Real MiniLM embeddings' mean and covariance factor: draws offsets shaped like real variation."""

    def __init__(self, mean: np.ndarray, factor: np.ndarray) -> None:
        self.mean, self.factor = mean.astype(np.float32), factor.astype(np.float32)

    @classmethod
    def load(cls, workdir: Path) -> Shape:
        cached = workdir / "minilm-shape.npz"
        if not cached.exists():
            real = _real_vectors()
            mean = real.mean(axis=0)
            values, vectors = np.linalg.eigh(np.cov((real - mean).T))
            workdir.mkdir(parents=True, exist_ok=True)
            np.savez(cached, mean=mean, factor=vectors * np.sqrt(np.clip(values, 0, None)))
        data = np.load(cached)
        return cls(data["mean"], data["factor"])

    def offsets(self, rng: np.random.Generator, n: int, fraction: float) -> np.ndarray:
        return (rng.standard_normal((n, DIM), dtype=np.float32) @ self.factor.T) * np.float32(np.sqrt(fraction))


def _real_vectors() -> np.ndarray:
    from papersys.config import ModelConfig
    from papersys.embed.engines.st import SentenceTransformerEngine

    legacy = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "arxiv-real-thirdparty" / "legacy"
    papers = pl.read_parquet(legacy / "PaperDigestAction__predictions.parquet")
    texts = [f"{t}\n{a}" for t, a in papers.select("title", "abstract").iter_rows()]
    return np.asarray(SentenceTransformerEngine(ModelConfig(device="cpu")).embed(texts), dtype=np.float32)


def _centres(rng: np.random.Generator, shape: Shape) -> np.ndarray:
    """Subtopic centres (mean + topic + subtopic offsets), subtopic s under topic s // 50."""
    topics = shape.mean + shape.offsets(rng, TOPICS, FRACTIONS[0])
    return topics[np.arange(SUBTOPICS) // (SUBTOPICS // TOPICS)] + shape.offsets(rng, SUBTOPICS, FRACTIONS[1])


def _vectors(rng: np.random.Generator, n: int, centres: np.ndarray, shape: Shape) -> np.ndarray:
    x = centres[rng.integers(0, len(centres), n)] + shape.offsets(rng, n, FRACTIONS[2])
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


def build(root: Path, papers: int, shape: Shape) -> None:
    from papersys.config import ModelConfig
    from papersys.embed.manifest import configured_manifest
    from papersys.store.embeddings import write_manifest
    from papersys.store.layout import Layout

    model = ModelConfig()
    write_manifest(Layout(root), model.alias, configured_manifest(model, datetime(2026, 1, 1, tzinfo=UTC)))
    rng = np.random.default_rng(1)
    centres = _centres(rng, shape)
    np.save(root / "centres.npy", centres)
    for year, n in _year_sizes(papers).items():
        _write_year(root, year, _ids(year, n), _vectors(rng, n, centres, shape), rng)
        print(f"built {year}: {n:,} papers", file=sys.stderr, flush=True)


def _cli(root: Path, *args: str, bytecode: bool = False) -> tuple[float, subprocess.CompletedProcess[str], float]:
    """Wall seconds, the process, and its CPU seconds (user + system) of one `papersys` run. ``bytecode``:
    let Python write and use .pyc files even where the environment says not to (as an installed copy does)."""
    dropped = {"PAPERSYS_CONFIG", "PYTHONDONTWRITEBYTECODE"} if bytecode else {"PAPERSYS_CONFIG"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "papersys", "--data-dir", str(root), *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"papersys {' '.join(args)} failed: {proc.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, proc, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def _memory() -> dict[str, int]:
    """This process's peak RSS (VmHWM: unlike ru_maxrss it does not inherit the parent's) and its current
    anonymous and file-backed (memory-mapped index files) resident parts, in MB."""
    keys = {"VmHWM:": "peak_rss_mb", "RssAnon:": "rss_anon_mb", "RssFile:": "rss_file_mb"}
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        parts = line.split()
        if parts and parts[0] in keys:
            out[keys[parts[0]]] = round(int(parts[1]) / 1024)
    return out


def _timed(index: Any, queries: np.ndarray, allowed: Any = None) -> tuple[list[float], list[set[int]]]:
    latencies, found = [], []
    for q in queries:
        t0 = time.perf_counter()
        rows = index.search(q, 10, allowed).rows
        latencies.append((time.perf_counter() - t0) * 1000)
        found.append(set(rows.tolist()))
    return latencies, found


def _pct(ms: list[float], q: float) -> float:
    return round(float(np.percentile(ms, q)), 2)


def _queries(root: Path, count: int) -> dict[str, Any]:
    """In a fresh process: latency, recall@10 against exact search, filtered queries, peak RSS. Half the
    queries are stored vectors moved a little (a paraphrase of a known paper), half new papers drawn from
    the generator's subtopics (a query on a subject)."""
    from papersys.config import ModelConfig, SearchConfig
    from papersys.search.filters import Filters
    from papersys.search.vectors import VectorIndex
    from papersys.store.layout import Layout

    probes = SearchConfig().probes
    index = VectorIndex.open(Layout(root), ModelConfig(), probes=probes)
    rng = np.random.default_rng(7)
    shape = Shape.load(root.parent)
    near = np.asarray(index.vectors[rng.integers(0, index.manifest.rows, count // 2)], dtype=np.float32)
    near += shape.offsets(rng, len(near), 0.02)
    fresh = _vectors(rng, count - len(near), np.load(root / "centres.npy"), shape)
    queries = np.concatenate([near / np.linalg.norm(near, axis=1, keepdims=True), fresh])
    latencies, found = _timed(index, queries)
    selective = Filters.of(["cs.A"])  # one of 120 categories, two per paper: ~1.7 %
    allowed = selective.rows(index)
    filtered, filtered_found = _timed(index, queries[:50], allowed)
    sweep = {}
    for other in (8, 16, 32, 64, 128):
        index.probes = other
        sweep[other] = _timed(index, queries)
    index.probes = probes
    memory = _memory()  # the search process's, before the exact scans below map every vector
    exact = _exact(index, queries)
    exact_filtered = _exact(index, queries[:50], allowed)
    exact_times = []
    for q in queries[:5]:
        t0 = time.perf_counter()
        np.argpartition(-(np.asarray(index.vectors) @ q), 10)[:10]
        exact_times.append(time.perf_counter() - t0)

    def recall(got: list[set[int]], truth: list[set[int]]) -> float:
        return round(sum(len(g & e) for g, e in zip(got, truth, strict=True)) / (10 * len(truth)), 4)

    return {
        "probes": probes,
        "lists": index.manifest.ann_lists,
        "query_p50_ms": _pct(latencies, 50),
        "query_p95_ms": _pct(latencies, 95),
        "recall_at_10": recall(found, exact),
        "recall_queries": len(exact),
        "by_probes": {
            str(p): {"recall_at_10": recall(f, exact), "p50_ms": _pct(ms, 50), "p95_ms": _pct(ms, 95)}
            for p, (ms, f) in sweep.items()
        },
        "exact_numpy_median_ms": round(statistics.median(exact_times) * 1000, 1),
        "filtered_share": round(len(allowed) / index.manifest.rows, 4) if allowed is not None else None,
        "filtered_p50_ms": _pct(filtered, 50),
        "filtered_p95_ms": _pct(filtered, 95),
        "filtered_recall_at_10": recall(filtered_found, exact_filtered),
        "filtered_always_k": all(len(f) == 10 for f in filtered_found),
        **memory,
    }


def _exact(index: Any, queries: np.ndarray, allowed: Any = None) -> list[set[int]]:
    """The true top 10 rows of each query over every live row (among ``allowed``), block by block."""
    rows = index.manifest.rows
    scores = np.empty((rows, len(queries)), dtype=np.float32)
    for start in range(0, rows, 262_144):
        block = np.asarray(index.vectors[start : start + 262_144], dtype=np.float32)
        scores[start : start + len(block)] = block @ queries.T
    if len(index.dead):
        scores[index.dead] = -2
    if allowed is not None:
        outside = np.ones(rows, dtype=bool)
        outside[allowed] = False
        scores[outside] = -2
    return [set(np.argpartition(-scores[:, i], 10)[:10].tolist()) for i in range(len(queries))]


def query_part(bench: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run benchmark ``bench``'s ``--part queries`` in a fresh process (its own memory, cold caches of its
    own) and return its JSON result."""
    child = subprocess.run(
        [
            *(sys.executable, str(Path(__file__).resolve().parents[1] / "bench.py"), bench, "--part", "queries"),
            *("--papers", str(args.papers), "--workdir", str(args.workdir), "--queries", str(args.queries)),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(child.stdout)
    return result


def _disk(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**30, 2)


def prepared_store(args: argparse.Namespace, make: Callable[[Path], None]) -> Path:
    """``<workdir>/data-<papers>``, generated by ``make(root)`` unless an earlier run left it complete (a
    ``.built`` marker, with the seconds it took) or ``--rebuild`` asks for it again."""
    root = Path(args.workdir) / f"data-{args.papers}"
    if args.rebuild or not (root / ".built").exists():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        t0 = time.perf_counter()
        make(root)
        (root / ".built").write_text(f"{time.perf_counter() - t0:.0f} s\n")
    return root


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.part == "queries":
        return _queries(args.workdir / f"data-{args.papers}", args.queries)
    root = prepared_store(args, lambda path: build(path, args.papers, Shape.load(args.workdir)))
    out: dict[str, Any] = {"papers": args.papers, "load_avg_start": round(os.getloadavg()[0], 2)}
    build_s, _, build_cpu = _cli(root, "index", "--model", "minilm", "--rebuild", "--json")
    out.update(build_s=round(build_s, 1), build_cpu_s=round(build_cpu, 1))
    out["index_disk_gb"] = _disk(root / "index" / "minilm")
    # the incremental update: 5,000 new papers of the newest year, stored, then `papersys index`
    rng = np.random.default_rng(int(time.time()))
    centres = np.load(root / "centres.npy")
    year = max(int(p.stem) for p in (root / "metadata").glob("*.parquet"))
    ids = [f"{year % 100:02d}12.{94000 + i:05d}" for i in range(args.update)]
    vectors = _vectors(rng, len(ids), centres, Shape.load(args.workdir))
    _write_year(root, year, ids, vectors, rng, when=datetime.now(UTC))
    update_s, proc, update_cpu = _cli(root, "index", "--model", "minilm", "--json")
    out.update(update_s=round(update_s, 1), update_cpu_s=round(update_cpu, 1))
    out["update_report"] = json.loads(proc.stdout)["models"][0]
    out.update(query_part("search", args))
    query = ("search", "graph neural networks for molecules", "--mode", "semantic", "--json")
    _cli(root, *query, bytecode=True)  # writes the bytecode an installed copy has
    cold = [_cli(root, *query, bytecode=True)[0] for _ in range(5)]
    out["cli_search_cold_median_s"] = round(statistics.median(cold), 2)
    out["load_avg_end"] = round(os.getloadavg()[0], 2)
    out["goals"] = {"build_s": 1200, "update_s": 10, "peak_rss_mb": 3072, "query_p95_ms": 20, "recall_at_10": 0.95}
    return out
