"""status: wall time of `papersys status --json` on a synthetic store of N papers with one model fully embedded.

Builds (once, into --workdir, reused on later runs with the same N) a store of N papers over 1991-2026,
each year file with realistic columns, and the default model's vectors for every paper (random unit
vectors, correct text hashes), then lets `papersys embed backlog` fill the coverage cache as autopatch
would. Times `python -m papersys status --json` as a fresh process (what a user or a monitoring check
runs), median of --repeats. Goal: < 2 s at 3 M papers.
"""

from __future__ import annotations

import argparse
import json
import os
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--papers", type=int, default=3_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/papersys-bench-status"))
    parser.add_argument("--rebuild", action="store_true", help="build the store again even if it exists")


def _year_sizes(total: int) -> dict[int, int]:
    years = list(range(1991, 2027))
    weights = np.linspace(1, 30, len(years)) ** 1.5  # arXiv grows every year
    sizes = np.floor(weights / weights.sum() * total).astype(int)
    sizes[-1] += total - sizes.sum()
    return dict(zip(years, sizes.tolist(), strict=True))


_ARCHIVES = (
    "hep-th",
    "hep-ph",
    "hep-ex",
    "hep-lat",
    "astro-ph",
    "cond-mat",
    "gr-qc",
    "quant-ph",
    "math-ph",
    "nucl-th",
    "nucl-ex",
    "physics",
    "math",
    "cs",
    "nlin",
    "math.AG",
    "math.DG",
    "math.CO",
    "math.PR",
)


def _ids(year: int, n: int) -> list[str]:
    if year < 2007:  # old style: 12 months x 1000 numbers per archive
        yy = year % 100
        return [f"{_ARCHIVES[i // 12000]}/{yy:02d}{1 + i // 1000 % 12:02d}{i % 1000:03d}" for i in range(n)]
    digits = 4 if year < 2015 else 5
    per_month = -(-n // 12)
    return [f"{year % 100:02d}{1 + i // per_month:02d}.{i % per_month + 1:0{digits}d}" for i in range(n)]


def build(root: Path, papers: int) -> None:
    from papersys.config import ModelConfig
    from papersys.embed.manifest import configured_manifest
    from papersys.embed.text import hash_texts, render_texts
    from papersys.store.atomic import write_parquet
    from papersys.store.embeddings import embedding_schema, write_manifest
    from papersys.store.layout import Layout
    from papersys.store.metadata import conform

    layout = Layout(root)
    model = ModelConfig()
    write_manifest(layout, model.alias, configured_manifest(model, datetime(2026, 1, 1, tzinfo=UTC)))
    rng = np.random.default_rng(1)
    words = np.array(
        [
            "quantum",
            "graph",
            "neural",
            "field",
            "theory",
            "lattice",
            "spectral",
            "model",
            "data",
            "learning",
            "gauge",
            "flow",
        ]
    )
    for year, n in _year_sizes(papers).items():
        ids = _ids(year, n)
        title_words = words[rng.integers(0, len(words), size=(n, 8))]
        titles = [" ".join(w) for w in title_words]
        abstracts = [t * 12 for t in titles]  # ~700 chars
        created = date(year, 1, 1)
        frame = conform(
            pl.DataFrame(
                {
                    "id": ids,
                    "title": titles,
                    "abstract": abstracts,
                    "authors": [["Ada Lovelace", "Alan Turing"]] * n,
                    "categories": [["cs.LG", "stat.ML"]] * n,
                    "primary_category": ["cs.LG"] * n,
                    "created": [created] * n,
                    "datestamp": [created + timedelta(days=30)] * n,
                    "source": ["snapshot"] * n,
                }
            ).sort("id")
        )
        write_parquet(frame, layout.metadata_file(year))
        vectors = rng.standard_normal((n, model.dim), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        emb = pl.DataFrame(
            {
                "id": frame["id"],
                "text_hash": hash_texts(render_texts(frame, model.template, model.prefix)),
                "vector": pl.Series(vectors),
                "embedded_at": [datetime(2026, 2, 1, tzinfo=UTC)] * n,
            },
            schema=embedding_schema(model.dim, model.dtype),
        )
        write_parquet(emb.sort("id"), layout.embedding_file(model.alias, year))
        print(f"built {year}: {n:,} papers", file=sys.stderr, flush=True)


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PAPERSYS_CONFIG"}  # measure the defaults, not a user's
    return subprocess.run(
        [sys.executable, "-m", "papersys", "--data-dir", str(root), *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    root = args.workdir / f"data-{args.papers}"
    marker = root / ".built"
    if args.rebuild or not marker.exists():
        shutil.rmtree(root, ignore_errors=True)
        t0 = time.perf_counter()
        build(root, args.papers)
        backlog = _cli(root, "embed", "backlog", "--json")  # fills the coverage cache, as autopatch does
        if backlog.returncode != 0:
            raise RuntimeError(backlog.stderr)
        marker.write_text(f"built in {time.perf_counter() - t0:.0f}s\n")
    times = []
    report: dict[str, Any] = {}
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        proc = _cli(root, "status", "--json")
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr)
        report = json.loads(proc.stdout)
    model = report["models"][0]
    if report["total_papers"] != args.papers or model["valid"] != args.papers:
        raise RuntimeError(f"unexpected store: {report['total_papers']} papers, {model['valid']} valid")
    version = _cli(root, "--version")
    baseline = [time.perf_counter()]
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        _cli(root, "--version")
        baseline.append(time.perf_counter() - t0)
    return {
        "papers": report["total_papers"],
        "valid": model["valid"],
        "years": len(report["papers"]),
        "disk_gb": round(report["disk_bytes"]["total"] / 2**30, 2),
        "status_json_median_s": round(statistics.median(times), 3),
        "status_json_runs_s": [round(t, 3) for t in times],
        "status_inside_process_s": report["seconds"],
        "cli_startup_median_s": round(statistics.median(baseline[1:]), 3),
        "version_ok": version.returncode == 0,
        "goal_s": 2.0,
    }
