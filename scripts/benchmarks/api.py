"""api: `/api/search` latency and throughput of `papersys serve` (query embedding included), also while
autopatch runs, and serve's peak RSS with the model and indexes loaded.

Uses the synthetic store of the search bench (same generator, `prepared_store`, `--workdir` of its own; the
real-MiniLM shape file is copied from `--shape-from` when present, else computed once), or `--store DIR`
(an existing data dir, e.g. the search bench's data-3000000: it is only read, except by `--autopatch`).
Then, against one `papersys serve` process (API on a free loopback port, no scheduled job due):
- semantic and hybrid searches with 1 and 8 concurrent clients (threads of this process, each with its
  own HTTP connection): p50/p95/p99 in ms over the client-side wall time of each request, queries/s;
- the same 8-client semantic load while `papersys embed autopatch` embeds `--autopatch` new papers (real
  titles and abstracts, real MiniLM) and updates the index: latencies, errors (must stay 0), its duration;
- serve's VmHWM (peak RSS) from /proc.
Queries are real paper titles (tests/fixtures/search/real_papers_1000.jsonl.gz), each used once per run.
The synthetic papers' own titles are placeholders, so hybrid's BM25 side mostly finds nothing: it measures
the cost of the keyword query and the fusion, not their relevance.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import requests

from benchmarks.search import Shape, _cli, build, prepared_store

REPO = Path(__file__).resolve().parents[2]
REAL = REPO / "tests" / "fixtures" / "search" / "real_papers_1000.jsonl.gz"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--papers", type=int, default=3_000_000, help="synthetic store size (ignored with --store)")
    parser.add_argument("--queries", type=int, default=200, help="queries per (mode, clients) measurement")
    parser.add_argument("--autopatch", type=int, default=500, help="new papers autopatch embeds under load (0: skip)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/papersys-bench-api"))
    parser.add_argument("--shape-from", type=Path, default=Path("/tmp/papersys-bench-search/minilm-shape.npz"))
    parser.add_argument("--store", type=Path, help="use this data dir instead of a generated one")
    parser.add_argument("--rebuild", action="store_true", help="generate the store again even if it exists")


def _store(args: argparse.Namespace) -> Path:
    if args.store:
        return Path(args.store).resolve()
    shape_file = args.workdir / "minilm-shape.npz"
    if not shape_file.exists() and args.shape_from.exists():
        args.workdir.mkdir(parents=True, exist_ok=True)
        shutil.copy(args.shape_from, shape_file)  # the real model's shape, without embedding 2,905 abstracts
    return prepared_store(args, lambda path: build(path, args.papers, Shape.load(args.workdir)))


def _ensure_indexes(root: Path) -> dict[str, float]:
    """Build the vector index (with the query encoder) and the full-text index when missing."""
    took = {}
    if not (root / "index" / "minilm" / "manifest.json").exists():
        took["vector_index_build_s"] = round(_cli(root, "index", "--model", "minilm", "--json")[0], 1)
    if not (root / "index" / "text" / "manifest.json").exists():
        took["text_index_build_s"] = round(_cli(root, "index", "--text", "--json")[0], 1)
    return took


class Serve:
    """`papersys serve` over ``root`` with the API on a free port; no scheduled job fires during a run."""

    def __init__(self, root: Path, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "serve.toml"
        self.config.write_text(
            f'data_dir = "{root}"\n[metrics]\nenabled = false\n[api]\nport = 0\n'
            '[scheduler]\ningest_cron = "0 3 29 2 *"\nembed_cron = "0 4 29 2 *"\n'
        )
        self.log = (workdir / "serve.log").open("w")
        env = {k: v for k, v in os.environ.items() if k != "PAPERSYS_CONFIG"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "papersys", "--config", str(self.config), "serve"],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            env=env,
        )
        state = root / "state" / "daemon.json"
        self.url = ""
        while not self.url:
            if self.proc.poll() is not None:
                raise RuntimeError(f"papersys serve exited {self.proc.returncode}; see {self.log.name}")
            if state.exists():  # written atomically (store/atomic.py): complete when it exists
                self.url = json.loads(state.read_text()).get("api") or ""
            time.sleep(0.1)

    def peak_rss_mb(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
        return 0

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=120)
        self.log.close()
        return code


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))], 1)


def _load(
    url: str, queries: list[str], *, mode: str, clients: int, until: threading.Event | None = None
) -> dict[str, Any]:
    """``clients`` threads share ``queries`` (each taken once); with ``until``, they go round again until it
    is set. Returns latency percentiles (ms), queries/s and errors."""
    latencies: list[float] = []
    errors: list[str] = []
    short_answers = [0]
    lock = threading.Lock()
    position = [0]

    def client() -> None:
        session = requests.Session()
        while True:
            with lock:
                i = position[0]
                position[0] += 1
            if i >= len(queries) and (until is None or until.is_set()):
                return
            params = {"q": queries[i % len(queries)], "k": 10, "mode": mode}
            t0 = time.perf_counter()
            try:
                response = session.get(url + "/api/search", params=params, timeout=300)
                # a complete answer; fewer than 10 results is one too when a quoted title phrase is required
                # and the store has no such paper (the synthetic store's titles are placeholders)
                ok = response.status_code == 200 and isinstance(response.json().get("results"), list)
                problem = "" if ok else f"{response.status_code}: {response.text[:200]}"
                short = ok and len(response.json()["results"]) < 10
            except requests.RequestException as exc:
                problem, short = repr(exc), False
            elapsed = (time.perf_counter() - t0) * 1000
            with lock:
                latencies.append(elapsed)
                short_answers[0] += short
                if problem:
                    errors.append(problem)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - t0
    return {
        "queries": len(latencies),
        "p50_ms": _pct(latencies, 50),
        "p95_ms": _pct(latencies, 95),
        "p99_ms": _pct(latencies, 99),
        "mean_ms": round(statistics.fmean(latencies), 1),
        "qps": round(len(latencies) / wall, 1),
        "errors": len(errors),
        "fewer_than_10_results": short_answers[0],
        "first_errors": errors[:3],
    }


def _add_unembedded(root: Path, count: int, titles: list[dict[str, str]]) -> list[str]:
    """``count`` new papers (real titles and abstracts, no vector yet) in this year's metadata file."""
    from papersys.store.atomic import write_parquet
    from papersys.store.layout import Layout
    from papersys.store.metadata import conform

    layout, year = Layout(root), max(int(p.stem) for p in (root / "metadata").glob("*.parquet"))
    base = 60_000 + int(time.time()) % 30_000
    ids = [f"{year % 100:02d}12.{base + i:05d}" for i in range(count)]
    papers = [titles[i % len(titles)] for i in range(count)]
    frame = conform(
        pl.DataFrame(
            {
                "id": ids,
                "title": [p["title"] for p in papers],
                "abstract": [p["abstract"] for p in papers],
                "authors": [["Ada Lovelace"]] * count,
                "categories": [["cs.LG"]] * count,
                "primary_category": ["cs.LG"] * count,
                "created": [date(year, 12, 1)] * count,
                "datestamp": [date(year, 12, 31)] * count,
                "source": ["snapshot"] * count,
            }
        )
    )
    path = layout.metadata_file(year)
    merged = conform(pl.concat([pl.read_parquet(path), frame]).unique("id", keep="last").sort("id"))
    write_parquet(merged, path)
    return ids


def _under_autopatch(root: Path, url: str, queries: list[str], args: argparse.Namespace) -> dict[str, Any]:
    with gzip.open(REAL, "rt", encoding="utf-8") as fh:
        real = [json.loads(line) for line in fh]
    _add_unembedded(root, args.autopatch, real)
    done = threading.Event()
    outcome: dict[str, Any] = {}

    def autopatch() -> None:
        try:
            # --limit: a store with older gaps (a bench store whose metadata was regenerated) must not turn
            # this into hours of embedding; the newest year, where the new papers are, goes first
            seconds, proc, cpu = _cli(root, "embed", "autopatch", "--limit", str(args.autopatch), "--json")
            report = json.loads(proc.stdout)
            outcome.update(autopatch_s=round(seconds, 1), autopatch_cpu_s=round(cpu, 1), report=report.get("models"))
        except RuntimeError as exc:
            outcome["autopatch_error"] = str(exc)[-500:]
        finally:
            done.set()

    worker = threading.Thread(target=autopatch)
    worker.start()
    result = _load(url, queries, mode="semantic", clients=8, until=done)
    worker.join()
    return {**result, **outcome}


def run(args: argparse.Namespace) -> dict[str, Any]:
    root = _store(args)
    out: dict[str, Any] = {"store": str(root), "load_avg_start": round(os.getloadavg()[0], 2)}
    out.update(_ensure_indexes(root))
    with gzip.open(REAL, "rt", encoding="utf-8") as fh:
        titles = [json.loads(line)["title"] for line in fh]
    serve = Serve(root, args.workdir)
    try:
        out["serve_start_rss_mb"] = serve.peak_rss_mb()
        _load(serve.url, titles[:8], mode="semantic", clients=1)  # warm: encoder, index maps, text index
        _load(serve.url, titles[8:16], mode="hybrid", clients=1)
        n, offset = args.queries, 16
        for mode in ("semantic", "hybrid"):
            for clients in (1, 8):
                chunk = titles[offset : offset + n] or titles[:n]
                offset += n
                out[f"{mode}_{clients}_clients"] = _load(serve.url, chunk, mode=mode, clients=clients)
        if args.autopatch:
            out["semantic_8_clients_during_autopatch"] = _under_autopatch(root, serve.url, titles, args)
        out["serve_peak_rss_mb"] = serve.peak_rss_mb()
    finally:
        out["serve_exit"] = serve.stop()
    out["load_avg_end"] = round(os.getloadavg()[0], 2)
    out["goals"] = {"semantic_p95_ms": 150, "qps": 20, "errors": 0}
    return out
