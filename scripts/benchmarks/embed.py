"""embed: raw model.encode vs autopatch papers/s; gap detection at 3 M ids; pipeline peak RSS at 100 k vs 1 M.

Each part runs in a fresh child process (``--part NAME``) so its peak RSS is its own. Parts:
  throughput  raw ``SentenceTransformer.encode`` on the backlog's rendered texts vs ``run_autopatch`` on the
              same papers (Parquet metadata → Parquet vectors), same model, batch size and threads; medians of
              repeats, alternated. One run per backlog shape (``--shapes``):
                year    N papers in one year, nothing stored (a first index)
                spread  N papers over 18 years, nothing stored
                thin    a daily harvest: --thin-gaps new papers over 18 years that already hold
                        --stored-per-year embedded papers each (planning reads and hashes those too)
  gaps        ``classify`` + ``coverage_of`` over 3 M synthetic ids (time, peak RSS); hashing 300 k texts.
  pipeline    autopatch with a constant-time stand-in engine on a store of 100 k-paper years: 1 year
              (100 k backlog) vs 10 years (1 M backlog); peak RSS must stay flat (streaming per year).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

_VOCAB = (  # noqa: SIM905
    "we propose novel method model data learning network neural deep quantum field theory graph sparse "
    "matrix kernel optimization convex gradient descent stochastic bound rate convergence analysis show "
    "results experiments benchmark dataset performance state art training inference attention transformer "
    "language vision image detection segmentation physics dark matter galaxy cluster halo cosmological "
    "simulation lattice gauge symmetry topological phase transition spin chain entanglement measurement "
    "protocol algorithm complexity polynomial time approximation random walk markov chain equilibrium "
    "dynamics flow fluid turbulence boundary layer equation solution existence uniqueness regularity "
    "estimate operator spectrum eigenvalue manifold curvature metric invariant group representation"
).split()


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def synthetic_year(year: int, n: int, seed: int) -> pl.DataFrame:
    """``n`` papers of ``year`` with arXiv-like title/abstract lengths (abstracts 60-260 words)."""
    from papersys.store.metadata import conform

    rng = random.Random(seed)
    yy = year % 100
    ids = [f"{yy:02d}{1 + i // 30000:02d}.{1 + i % 30000:05d}" for i in range(n)]
    titles = [" ".join(rng.choices(_VOCAB, k=rng.randint(6, 16))).capitalize() for _ in range(n)]
    abstracts = [" ".join(rng.choices(_VOCAB, k=rng.randint(60, 260))).capitalize() + "." for _ in range(n)]
    day = date(year, 1, 2)
    frame = pl.DataFrame(
        {
            "id": ids,
            "title": titles,
            "abstract": abstracts,
            "authors": [["A. Author"]] * n,
            "categories": [["cs.LG"]] * n,
            "primary_category": ["cs.LG"] * n,
            "created": [day] * n,
            "datestamp": [day] * n,
            "source": ["snapshot"] * n,
        }
    )
    return conform(frame)


def _write_years(root: Path, years: dict[int, int]) -> None:
    from papersys.store.atomic import write_parquet
    from papersys.store.layout import Layout

    layout = Layout(root)
    for year, n in years.items():
        write_parquet(synthetic_year(year, n, seed=year), layout.metadata_file(year))


SPREAD_YEARS = 18


def _backlog_store(root: Path, args: argparse.Namespace, dim: int) -> list[str]:
    """Write the store of ``args.shape`` under ``root``; returns the ids of the backlog (the papers to embed).

    For ``thin`` the stored papers are embedded first with a constant-time engine (valid vectors of the right
    text hashes), then the new papers are added to the metadata."""
    from papersys.config import ModelConfig
    from papersys.embed.autopatch import run_autopatch
    from papersys.runtime import Runtime
    from papersys.store.atomic import write_parquet
    from papersys.store.layout import Layout

    layout = Layout(root)
    if args.shape == "year":
        _write_years(root, {2024: args.n})
        return synthetic_year(2024, args.n, seed=2024)["id"].to_list()
    years = [2024 - i for i in range(SPREAD_YEARS)]
    total = args.n if args.shape == "spread" else args.thin_gaps
    new = {year: total // SPREAD_YEARS + (i < total % SPREAD_YEARS) for i, year in enumerate(years)}
    old = dict.fromkeys(years, 0 if args.shape == "spread" else args.stored_per_year)
    frames = {year: synthetic_year(year, old[year] + new[year], seed=year) for year in years}
    if args.shape == "thin":
        for year, frame in frames.items():
            write_parquet(frame.head(old[year]), layout.metadata_file(year))
        engine = _ConstantEngine(dim)
        model = ModelConfig(
            dim=dim, batch_size=1024, chunk_size=65_536, max_length=args.max_length
        )  # the measured identity
        run_autopatch(layout, [model], Runtime(), engine_factory=lambda m, p: engine)
    for year, frame in frames.items():
        write_parquet(frame, layout.metadata_file(year))
    return [pid for year, frame in frames.items() for pid in frame["id"].to_list()[old[year] :]]


# parts ----------------------------------------------------------------------------------------------------
def part_throughput(args: argparse.Namespace) -> dict[str, Any]:
    import shutil

    import torch

    from papersys.config import ModelConfig
    from papersys.embed.autopatch import run_autopatch
    from papersys.embed.engines.st import SentenceTransformerEngine
    from papersys.embed.text import render_texts
    from papersys.runtime import Runtime
    from papersys.store.layout import Layout
    from papersys.store.metadata import read_year

    root = Path(tempfile.mkdtemp(prefix="bench-embed-"))
    layout = Layout(root)
    model = ModelConfig(batch_size=args.batch_size, max_length=args.max_length, chunk_size=args.chunk_size)
    backlog = _backlog_store(root, args, model.dim)
    saved = root / "saved"  # the store before autopatch, restored before each repeat
    for name in ("embeddings", "state"):
        if (root / name).exists():
            shutil.copytree(root / name, saved / name)
    engine = SentenceTransformerEngine(model)
    raw_model = engine._st  # the very same loaded model: identical weights, threads, device
    metadata = pl.concat([read_year(layout, year) for year in layout.metadata_years()])
    metadata = metadata.filter(pl.col("id").is_in(backlog))
    texts = render_texts(metadata, model.template).to_list()
    n, years = len(texts), len(layout.metadata_years())
    engine.embed(texts[: args.batch_size])  # warm-up

    class Shared:  # the loaded engine, lent to autopatch for each repeat
        dim = engine.dim
        embed = staticmethod(engine.embed)

        def close(self) -> None:
            return None

    def measure_raw() -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        raw_model.encode(texts, batch_size=args.batch_size, normalize_embeddings=True, show_progress_bar=False)
        return n / (time.perf_counter() - wall), n / (time.process_time() - cpu)

    def measure_autopatch() -> tuple[float, float]:
        for name in ("embeddings", "state"):
            shutil.rmtree(root / name, ignore_errors=True)
            if (saved / name).exists():
                shutil.copytree(saved / name, root / name)
        wall, cpu = time.perf_counter(), time.process_time()
        report = run_autopatch(layout, [model], Runtime(), engine_factory=lambda m, p: Shared())
        assert report.embedded == n, (report.embedded, n)
        return n / (time.perf_counter() - wall), n / (time.process_time() - cpu)

    # wall-clock papers/s, and papers per CPU-second (robust when other jobs share the 2 cores)
    raw, patched, raw_cpu, patched_cpu = [], [], [], []
    for rep in range(args.repeats):  # alternate which goes first: the machine is shared and drifts
        order = (measure_autopatch, measure_raw) if rep % 2 else (measure_raw, measure_autopatch)
        for measure in order:
            wall_rate, cpu_rate = measure()
            (patched if measure is measure_autopatch else raw).append(wall_rate)
            (patched_cpu if measure is measure_autopatch else raw_cpu).append(cpu_rate)
    shutil.rmtree(root, ignore_errors=True)
    return {
        "shape": args.shape,
        "n": n,
        "years": years,
        "stored_per_year": args.stored_per_year if args.shape == "thin" else 0,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "chunk_size": args.chunk_size,
        "torch_threads": torch.get_num_threads(),
        "raw_papers_per_s": [round(x, 2) for x in raw],
        "autopatch_papers_per_s": [round(x, 2) for x in patched],
        "raw_median": round(statistics.median(raw), 2),
        "autopatch_median": round(statistics.median(patched), 2),
        "ratio_median": round(statistics.median(patched) / statistics.median(raw), 3),
        "paired_ratios": [round(p / r, 3) for p, r in zip(patched, raw, strict=True)],
        "paired_ratio_median": round(statistics.median(p / r for p, r in zip(patched, raw, strict=True)), 3),
        "raw_papers_per_cpu_s": [round(x, 2) for x in raw_cpu],
        "autopatch_papers_per_cpu_s": [round(x, 2) for x in patched_cpu],
        "cpu_ratio_median": round(statistics.median(patched_cpu) / statistics.median(raw_cpu), 3),
        "cpu_paired_ratios": [round(p / r, 3) for p, r in zip(patched_cpu, raw_cpu, strict=True)],
        "cpu_paired_ratio_median": round(
            statistics.median(p / r for p, r in zip(patched_cpu, raw_cpu, strict=True)), 3
        ),
    }


def part_gaps(args: argparse.Namespace) -> dict[str, Any]:
    from papersys.embed.gaps import classify, coverage_of
    from papersys.embed.text import hash_texts

    n = args.gap_ids
    base_rss = _rss_mb()
    rng = np.random.default_rng(0)
    ids = pl.Series("id", [f"{i:010d}" for i in range(n)])
    hashes = pl.Series("text_hash", [f"{i:032x}" for i in range(n)])
    expected = pl.DataFrame([ids, hashes])
    keep = rng.random(n) > 0.05  # 5 % missing
    stored_hash = hashes.to_numpy().copy()
    stored_hash[rng.random(n) < 0.03] = "stale"  # 3 % stale
    stored = pl.DataFrame(
        {
            "id": ids,
            "text_hash": stored_hash,
            "embedded_at": [datetime(2024, 1, 1, tzinfo=UTC)] * n,
            "valid": rng.random(n) > 0.01,  # 1 % invalid
        }
    ).filter(pl.Series(keep))
    data_rss = _rss_mb()
    times = []
    for _ in range(args.repeats):
        began = time.perf_counter()
        cov = coverage_of(classify(expected, stored))
        times.append(time.perf_counter() - began)
    classify_peak = _rss_mb()  # before hashing: the text corpus below would inflate the peak
    texts = pl.Series([" ".join(random.Random(i).choices(_VOCAB, k=180)) for i in range(args.hash_texts)])
    began = time.perf_counter()
    hash_texts(texts)
    hash_s = time.perf_counter() - began
    return {
        "ids": n,
        "coverage": cov.to_dict(),
        "classify_seconds": [round(t, 3) for t in times],
        "classify_median_s": round(statistics.median(times), 3),
        "rss_inputs_mb": round(data_rss - base_rss),
        "peak_rss_mb": round(classify_peak),
        "peak_over_inputs_mb": round(classify_peak - data_rss),
        "peak_rss_with_hashing_mb": round(_rss_mb()),
        "hash_texts": args.hash_texts,
        "hash_seconds": round(hash_s, 3),
    }


class _ConstantEngine:
    """Constant, negligible time per batch: copies of random unit vectors drawn once (incompressible, like real
    ones: a pool of 32,768 rows, 48 MB at 384 dims, beyond zstd's window, so no file compresses by repeats).
    Drawing fresh normals for every batch cost 7 µs a paper, a tenth of what the pipeline was measured at."""

    POOL = 32_768

    def __init__(self, dim: int) -> None:
        block = np.random.default_rng(1).standard_normal((self.POOL, dim), dtype=np.float32)
        self.pool = block / np.linalg.norm(block, axis=1, keepdims=True)
        self.next = 0
        self.dim = dim

    def embed(self, texts: list[str]) -> np.ndarray:
        rows = (self.next + np.arange(len(texts))) % self.POOL
        self.next = int(rows[-1]) + 1 if len(texts) else self.next
        return self.pool[rows]

    def close(self) -> None:
        return None


def part_pipeline(args: argparse.Namespace) -> dict[str, Any]:
    import shutil

    from papersys.config import ModelConfig
    from papersys.embed.autopatch import run_autopatch
    from papersys.runtime import Runtime
    from papersys.store.layout import Layout

    root = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    years = {2024 - i: args.year_size for i in range(args.years)}
    _write_years(root, years)
    base_rss = _rss_mb()
    model = ModelConfig(batch_size=args.batch_size, chunk_size=args.chunk_size)
    engine = _ConstantEngine(model.dim)
    began = time.perf_counter()
    report = run_autopatch(Layout(root), [model], Runtime(), engine_factory=lambda m, p: engine)
    seconds = time.perf_counter() - began
    size = sum(p.stat().st_size for p in Layout(root).embeddings_root.rglob("*.parquet"))
    shutil.rmtree(root, ignore_errors=True)
    return {
        "backlog": sum(years.values()),
        "years": args.years,
        "year_size": args.year_size,
        "embedded": report.embedded,
        "seconds": round(seconds, 1),
        "papers_per_s": round(report.embedded / seconds),
        "rss_before_run_mb": round(base_rss),
        "peak_rss_mb": round(_rss_mb()),
        "embedding_files_mb": round(size / 2**20),
    }


_BARE_ENCODE = """
import sys, polars as pl
from model2vec import StaticModel
texts = pl.read_parquet(sys.argv[1])["text"].to_list()
model = StaticModel.from_pretrained(sys.argv[2], force_download=False)
vectors = model.encode(texts, batch_size=int(sys.argv[3]), max_length=int(sys.argv[4]), normalize=True)
assert vectors.shape[0] == len(texts)
"""


def part_static(args: argparse.Namespace) -> dict[str, Any]:
    """Whole processes, alternated: ``papersys embed autopatch`` with a model2vec model on a store vs a bare
    ``StaticModel.encode`` of the same rendered texts (read from a Parquet file; nothing written)."""
    import shutil

    from model2vec import StaticModel

    from papersys.embed.text import render_texts
    from papersys.store.layout import Layout
    from papersys.store.metadata import read_year

    model_dir = Path(args.static_model).resolve()
    dim = int(StaticModel.from_pretrained(model_dir, force_download=False).dim)
    root = Path(tempfile.mkdtemp(prefix="bench-static-"))
    data = root / "data"
    args.shape, args.n = args.static_shape, args.static_n
    backlog = set(_backlog_store(data, args, dim))
    layout = Layout(data)
    metadata = pl.concat([read_year(layout, year) for year in layout.metadata_years()])
    texts = render_texts(metadata.filter(pl.col("id").is_in(list(backlog))), args.static_template)
    texts.to_frame("text").write_parquet(root / "texts.parquet")
    n = texts.len()
    config = root / "papersys.toml"
    config.write_text(
        f'data_dir = {json.dumps(str(data))}\n\n[[embedding.models]]\nalias = "static"\nbackend = "model2vec"\n'
        f"name = {json.dumps(str(model_dir))}\ndim = {dim}\nbatch_size = {args.static_batch_size}\n"
        f"chunk_size = {args.static_chunk_size}\nmax_length = {args.max_length}\n"
        f"template = {json.dumps(args.static_template)}\n"
    )
    saved = root / "saved"
    shutil.copytree(data, saved)
    bare = [sys.executable, "-c", _BARE_ENCODE, str(root / "texts.parquet"), str(model_dir)]
    bare += [str(args.static_batch_size), str(args.max_length)]
    autopatch = [sys.executable, "-m", "papersys", "--config", str(config), "embed", "autopatch", "--json"]

    def timed(argv: list[str]) -> tuple[float, float]:
        """Wall seconds and CPU seconds (user + system, all threads) of one whole process."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - began
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if done.returncode:
            raise SystemExit(f"{argv[2:5]} failed: {done.stderr.strip()[-2000:]}")
        if argv is autopatch:
            assert json.loads(done.stdout)["embedded"] == n
        return seconds, cpu

    raw, patched, raw_cpu, patched_cpu = [], [], [], []
    for rep in range(args.repeats):
        shutil.rmtree(data)
        shutil.copytree(saved, data)
        for argv in (autopatch, bare) if rep % 2 else (bare, autopatch):
            seconds, cpu = timed(argv)
            (patched if argv is autopatch else raw).append(n / seconds)
            (patched_cpu if argv is autopatch else raw_cpu).append(n / cpu)
    shutil.rmtree(root, ignore_errors=True)
    return {
        "shape": args.static_shape,
        "n": n,
        "model": str(model_dir),
        "dim": dim,
        "batch_size": args.static_batch_size,
        "chunk_size": args.static_chunk_size,
        "bare_encode_papers_per_s": [round(x) for x in raw],
        "autopatch_papers_per_s": [round(x) for x in patched],
        "bare_median": round(statistics.median(raw)),
        "autopatch_median": round(statistics.median(patched)),
        "ratio_median": round(statistics.median(patched) / statistics.median(raw), 3),
        "paired_ratios": [round(p / r, 3) for p, r in zip(patched, raw, strict=True)],
        "paired_ratio_median": round(statistics.median(p / r for p, r in zip(patched, raw, strict=True)), 3),
        "bare_papers_per_cpu_s": [round(x) for x in raw_cpu],
        "autopatch_papers_per_cpu_s": [round(x) for x in patched_cpu],
        "cpu_ratio_median": round(statistics.median(patched_cpu) / statistics.median(raw_cpu), 3),
    }


PARTS = {"throughput": part_throughput, "gaps": part_gaps, "pipeline": part_pipeline, "static": part_static}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--part", choices=sorted(PARTS), help="run one part in this process (internal)")
    parser.add_argument("--skip", action="append", default=[], choices=sorted(PARTS), help="skip a part")
    parser.add_argument("--n", type=int, default=1000, help="throughput: backlog of the year and spread shapes")
    parser.add_argument("--shapes", default="year,spread,thin", help="throughput: backlog shapes to run")
    parser.add_argument("--shape", default="year", choices=("year", "spread", "thin"), help=argparse.SUPPRESS)
    parser.add_argument("--thin-gaps", type=int, default=400, help="throughput: the thin shape's backlog")
    parser.add_argument("--stored-per-year", type=int, default=20_000, help="throughput: thin shape's stored")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--chunk-size", type=int, default=2048)
    parser.add_argument("--static-model", help="static: a model2vec model directory (papersys model distill)")
    parser.add_argument("--static-n", type=int, default=30_000, help="static: papers in the backlog")
    parser.add_argument("--static-shape", default="spread", choices=("year", "spread"))
    parser.add_argument("--static-batch-size", type=int, default=1024)
    parser.add_argument("--static-chunk-size", type=int, default=16_384, help="static: as distill prints it")
    parser.add_argument("--static-template", default="{title}\n{title}\n{title}\n{abstract}")
    parser.add_argument("--gap-ids", type=int, default=3_000_000)
    parser.add_argument("--hash-texts", type=int, default=300_000)
    parser.add_argument("--year-size", type=int, default=100_000)
    parser.add_argument("--years", type=int, default=0, help="pipeline: only this many years (internal)")
    parser.add_argument("--backlogs", default="1,10", help="pipeline: years of --year-size papers per run")


def _child(args: argparse.Namespace, part: str, extra: list[str]) -> dict[str, Any]:
    script = Path(__file__).resolve().parents[1] / "bench.py"
    argv = [sys.executable, str(script), "embed", "--part", part, *extra]
    names = ("n", "repeats", "batch_size", "max_length", "chunk_size", "gap_ids", "hash_texts", "year_size")
    for name in (*names, "thin_gaps", "stored_per_year"):
        argv += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.part:
        return PARTS[args.part](args)
    result: dict[str, Any] = {}
    if "throughput" not in args.skip:
        result["throughput"] = [
            _child(args, "throughput", ["--shape", shape]) for shape in args.shapes.split(",") if shape.strip()
        ]
    if "gaps" not in args.skip:
        result["gaps"] = _child(args, "gaps", [])
    if "static" not in args.skip and args.static_model:
        extra = ["--static-model", args.static_model, "--static-n", str(args.static_n)]
        extra += ["--static-shape", args.static_shape, "--static-batch-size", str(args.static_batch_size)]
        extra += ["--static-chunk-size", str(args.static_chunk_size)]
        result["static"] = _child(args, "static", [*extra, "--static-template", args.static_template])
    if "pipeline" not in args.skip:
        result["pipeline"] = [
            _child(args, "pipeline", ["--years", years]) for years in args.backlogs.split(",") if years.strip()
        ]
    return result
