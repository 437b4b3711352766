"""scale: local vs Ray executor papers/s (MiniLM, static); the constant-engine pipeline ceiling at 100 k; RSS at 1 M.

Each part runs in a fresh child process (``--part NAME``) so its peak RSS is its own. Parts:
  ray      the real MiniLM (the bundled copy) over --n real papers (the 2,905 real titles and abstracts of
           the shared fixtures; synthetic ones beyond that), ``run_autopatch`` with executor = "local" and
           executor = "ray" (--actors actors x 1 CPU on a private local Ray of --ray-cpus CPUs), alternated
           for --repeats rounds, a fresh store each run. Per run: total seconds, load seconds, papers/s
           three ways (``ModelPatch.rate``; steady, from the vectors' arrival times; whole run including
           Ray's start), and the ray/local ratios of the medians. Goal: Ray's overhead <= 10 %.
  fast     the same comparison at thousands of papers/s: a small static model (model2vec, 32 dims) distilled
           from MiniLM, over --fast-n (50,000) synthetic papers, chunks of --fast-chunk-size: the executors'
           own costs (Ray's queue, read tasks, blocks, transfers) decide, as they would at GPU speed.
  ceiling  autopatch with a constant-time engine (embed.py's pipeline part) on a 100 k backlog (1 year of
           --year-size papers): the pipeline's own papers/s. Goal: >= 20,000 papers/s.
  rss      the same on a 1 M backlog (10 years): papers/s and the driver's peak RSS, vs ceiling's (flat).
  paced    a GPU stand-in: an engine that waits len(texts) / rate per batch with the GIL released (as a GPU's
           caller waits), at --paced-rates papers/s, on --paced-years backlogs, gpu_check's batch and chunk
           sizes; engine-busy seconds / wall seconds is the ratio a GPU of that speed would get (goal >= 0.9).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from benchmarks.embed import part_pipeline, synthetic_year
from papersys.runtime import NullObserver

if TYPE_CHECKING:
    from papersys.config import ModelConfig

ROOT = Path(__file__).resolve().parents[2]  # the repository; the shared fixtures lie beside it
REAL = ROOT.parent / "shared/fixtures/arxiv-real-thirdparty/legacy/PaperDigestAction__predictions.parquet"
CEILING_GOAL = 20_000  # papers/s of the pipeline alone (issue 16)
OVERHEAD_GOAL = 0.9  # Ray's steady rate over the local one


def real_papers(n: int, path: Path) -> tuple[pl.DataFrame, str]:
    """``n`` papers in the metadata schema: the real fixture's first ``n``, synthetic ones if it is short or absent."""
    from papersys.store.metadata import conform

    if not path.exists() or n > pl.scan_parquet(path).select(pl.len()).collect().item():
        return synthetic_year(2025, n, seed=2025), "synthetic"
    src = pl.read_parquet(path).head(n)
    created = src["created"].str.to_date(strict=False).fill_null(date(2025, 1, 2))
    frame = pl.DataFrame(
        {
            "id": src["id"],
            "title": src["title"],
            "abstract": src["abstract"],
            "authors": src["authors"],
            "categories": src["categories"],
            "primary_category": src["categories"].list.first().fill_null("cs.LG"),
            "created": created,
            "datestamp": created,
            "source": ["snapshot"] * n,
        }
    )
    return conform(frame), f"real ({path.name})"


class Arrivals(NullObserver):
    """A Runtime observer that keeps when each batch (local) or block (Ray) of vectors came back."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.counts: list[int] = []

    def embedded(self, model: str, count: int, seconds: float) -> None:
        self.times.append(time.monotonic())
        self.counts.append(count)

    def steady(self, skip: int) -> float | None:
        """Papers/s after the first ``skip`` arrivals: those came back while the model was loading (Ray's
        actors each embed a block before the first one is back), the rest at the pipeline's steady pace."""
        if len(self.times) <= skip:
            return None
        span = self.times[-1] - self.times[skip - 1]
        return sum(self.counts[skip:]) / span if span > 0 else None


def _probe_threads(ray: Any, cpus: float) -> dict[str, Any]:
    """What a task of ``cpus`` CPUs sees on this Ray (an actor of the pool is given the same environment)."""

    def probe() -> dict[str, Any]:  # nested: pickled by value (a Ray worker cannot import benchmarks.*)
        import os

        import torch

        return {"torch_threads": torch.get_num_threads(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}

    result: dict[str, Any] = ray.get(ray.remote(num_cpus=cpus)(probe).remote())
    return result


class RayRound:
    """One run per executor on a fresh copy of the store; keeps every figure."""

    def __init__(self, args: argparse.Namespace, root: Path, n: int, model: ModelConfig) -> None:
        from papersys.config import EmbeddingConfig

        self.args, self.root, self.n, self.model = args, root, n, model
        self.configs = {name: EmbeddingConfig(executor=name, models=(model,)) for name in ("local", "ray")}
        self.runs: dict[str, list[dict[str, Any]]] = {"local": [], "ray": []}
        self.threads: dict[str, Any] = {}
        self.probe = model.backend == "sentence_transformer"  # torch threads: only where torch embeds

    def run(self, executor: str) -> None:
        from papersys.embed.autopatch import run_autopatch
        from papersys.runtime import Runtime
        from papersys.store.layout import Layout

        data = self.root / "data"
        shutil.rmtree(data, ignore_errors=True)
        shutil.copytree(self.root / "saved", data)
        arrivals = Arrivals()
        embedding = self.configs[executor]
        began = time.perf_counter()
        ray = self._start_ray() if executor == "ray" else None
        ray_start = time.perf_counter() - began
        report = run_autopatch(Layout(data), [self.model], Runtime(observer=arrivals), embedding=embedding)
        total = time.perf_counter() - began
        patch = report.models[0]
        assert patch.embedded == self.n, (executor, patch.embedded, self.n)
        if self.probe and executor == "ray" and "ray" not in self.threads:
            self.threads["ray"] = _probe_threads(ray, self.args.cpus_per_actor)
        if self.probe and executor == "local" and "local" not in self.threads:
            import torch

            self.threads["local"] = {"torch_threads": torch.get_num_threads()}
        if ray is not None:
            ray.shutdown()
        steady = arrivals.steady(self.args.actors if executor == "ray" else 1)
        self.runs[executor].append(
            {
                "seconds": round(total, 2),
                "ray_start_seconds": round(ray_start, 2),
                "autopatch_seconds": round(patch.seconds, 2),
                "load_seconds": round(patch.load_seconds, 2),
                "rate": round(patch.rate or 0.0, 2),
                "steady": None if steady is None else round(steady, 2),
                "whole": round(self.n / total, 2),
                "arrivals": len(arrivals.times),
            }
        )

    def _start_ray(self) -> Any:
        from papersys.embed.executors.raydata import import_ray

        ray = import_ray()  # sets RAY_ENABLE_UV_RUN_RUNTIME_ENV=0 before Ray reads it, as a papersys run does
        store = self.configs["ray"].ray_object_store_mb * 2**20
        ray.init(num_cpus=self.args.ray_cpus, object_store_memory=store, include_dashboard=False, log_to_driver=False)
        return ray

    def alternate(self) -> None:
        for rep in range(self.args.repeats):  # alternate which goes first: the machine is shared and drifts
            for executor in ("ray", "local") if rep % 2 else ("local", "ray"):
                self.run(executor)

    def medians(self) -> dict[str, Any]:
        """Medians per executor; ``steady`` is None where a run had too few arrivals (a backlog of few blocks)."""
        out: dict[str, Any] = {}
        for key in ("rate", "steady", "whole", "load_seconds", "seconds"):
            got = {side: [r[key] for r in self.runs[side] if r[key] is not None] for side in ("local", "ray")}
            med = {side: round(statistics.median(v), 2) if v else None for side, v in got.items()}
            out[key] = dict(med)
            if key in ("rate", "steady", "whole") and med["local"] and med["ray"] is not None:
                out[key]["ray_over_local"] = round(med["ray"] / med["local"], 3)
        return out


def part_ray(args: argparse.Namespace) -> dict[str, Any]:
    from papersys.config import ModelConfig
    from papersys.embed.executors.raydata import block_rows
    from papersys.store.layout import Layout
    from papersys.store.metadata import upsert

    root = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    papers, texts = real_papers(args.n, Path(args.papers))
    upsert(Layout(root / "saved"), papers)
    model = ModelConfig(
        batch_size=args.batch_size,
        chunk_size=args.chunk_size,
        max_length=args.max_length,
        ray_actors=args.actors,
        ray_cpus_per_actor=args.cpus_per_actor,
    )
    bench = RayRound(args, root, papers.height, model)
    bench.alternate()
    shutil.rmtree(root, ignore_errors=True)
    return {
        "n": papers.height,
        "texts": texts,
        "repeats": args.repeats,
        "actors": args.actors,
        "cpus_per_actor": args.cpus_per_actor,
        "ray_cpus": args.ray_cpus,
        "batch_size": args.batch_size,
        "chunk_size": args.chunk_size,
        "max_length": args.max_length,
        "block_rows": block_rows(bench.model),
        "os_cpus": os.cpu_count(),
        "threads": bench.threads,
        "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "TOKENIZERS_PARALLELISM")},
        "local": bench.runs["local"],
        "ray": bench.runs["ray"],
        "median": bench.medians(),
    }


def part_fast(args: argparse.Namespace) -> dict[str, Any]:
    """Local vs Ray at thousands of papers/s: a small static model (model2vec) distilled from the bundled
    MiniLM, so the executor's own costs (queue, read tasks, blocks, transfers) decide, as at GPU speed."""
    import tomllib

    from papersys import service
    from papersys.config import ModelConfig, config_from_mapping
    from papersys.embed.distill import DistillOptions
    from papersys.embed.executors.raydata import block_rows
    from papersys.store.atomic import write_parquet
    from papersys.store.layout import Layout

    root = Path(tempfile.mkdtemp(prefix="bench-scale-fast-"))
    write_parquet(synthetic_year(2024, args.fast_n, seed=2024), Layout(root / "saved").metadata_file(2024))
    config = config_from_mapping({"data_dir": str(root / "model")}, base_dir=root)
    shutil.copytree(root / "saved", root / "model")
    options = DistillOptions(dims=32, vocabulary_from_store=1000, subwords=False)  # as tests/embed/test_static
    began = time.perf_counter()
    report = service.distill_model(config, source="minilm", target="fast", options=options)
    distill_s = time.perf_counter() - began
    (block,) = tomllib.loads(report.config_block)["embedding"]["models"]
    block.update(ray_actors=args.actors, ray_cpus_per_actor=args.cpus_per_actor, chunk_size=args.fast_chunk_size)
    model = ModelConfig(**block)
    bench = RayRound(args, root, args.fast_n, model)
    bench.alternate()
    shutil.rmtree(root, ignore_errors=True)
    return {
        "n": args.fast_n,
        "texts": "synthetic",
        "model": f"model2vec, {model.dim} dims, distilled in {distill_s:.0f}s",
        "repeats": args.repeats,
        "actors": args.actors,
        "cpus_per_actor": args.cpus_per_actor,
        "ray_cpus": args.ray_cpus,
        "batch_size": model.batch_size,
        "chunk_size": model.chunk_size,
        "block_rows": block_rows(model),
        "local": bench.runs["local"],
        "ray": bench.runs["ray"],
        "median": bench.medians(),
    }


def part_paced(args: argparse.Namespace) -> dict[str, Any]:
    """autopatch with an engine that waits ``len(texts) / rate`` seconds per batch, the GIL released (as a
    GPU's caller waits for its kernels), then returns vectors at no cost: the share of the run the engine is
    busy (engine seconds / wall seconds) is what a GPU engine of that speed would get from the pipeline."""
    from benchmarks.embed import _ConstantEngine, _write_years
    from papersys.config import ModelConfig
    from papersys.embed.autopatch import run_autopatch
    from papersys.runtime import Runtime
    from papersys.store.layout import Layout

    class Paced(_ConstantEngine):
        def __init__(self, dim: int, rate: float) -> None:
            super().__init__(dim)
            self.rate, self.busy = rate, 0.0

        def embed(self, texts: list[str]) -> Any:
            wait = len(texts) / self.rate
            time.sleep(wait)
            self.busy += wait
            return super().embed(texts)

    runs = []
    for years in (int(y) for y in args.paced_years.split(",")):
        for rate in (float(r) for r in args.paced_rates.split(",")):
            root = Path(tempfile.mkdtemp(prefix="bench-paced-"))
            _write_years(root, {2024 - i: args.year_size for i in range(years)})
            model = ModelConfig(batch_size=args.paced_batch_size, chunk_size=args.paced_chunk_size)
            engine = Paced(model.dim, rate)
            began = time.perf_counter()
            report = run_autopatch(Layout(root), [model], Runtime(), engine_factory=lambda m, p, e=engine: e)
            wall = time.perf_counter() - began
            shutil.rmtree(root, ignore_errors=True)
            runs.append(
                {
                    "years": years,
                    "backlog": report.embedded,
                    "engine_papers_per_s": rate,
                    "engine_seconds": round(engine.busy, 2),
                    "seconds": round(wall, 2),
                    "ratio": round(engine.busy / wall, 3),
                }
            )
    return {"batch_size": args.paced_batch_size, "chunk_size": args.paced_chunk_size, "runs": runs}


PARTS = {"ray": part_ray, "fast": part_fast, "ceiling": part_pipeline, "rss": part_pipeline, "paced": part_paced}
YEARS = {"ceiling": 1, "rss": 10}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--part", choices=sorted(PARTS), help="run one part in this process (internal)")
    parser.add_argument("--skip", action="append", default=[], choices=sorted(PARTS), help="skip a part")
    parser.add_argument("--n", type=int, default=2000, help="ray: papers in the backlog")
    parser.add_argument("--papers", default=str(REAL), help="ray: the real papers (a legacy Parquet file)")
    parser.add_argument("--repeats", type=int, default=3, help="ray: rounds of local then Ray, alternated")
    parser.add_argument("--actors", type=int, default=2, help="ray: ray_actors")
    parser.add_argument("--cpus-per-actor", type=float, default=1.0, help="ray: ray_cpus_per_actor")
    parser.add_argument("--ray-cpus", type=int, default=2, help="ray: num_cpus of the private local Ray")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument(
        "--chunk-size", type=int, default=512, help="ray: small enough that 2,000 papers make many blocks"
    )
    parser.add_argument("--fast-n", type=int, default=50_000, help="fast: papers (synthetic)")
    parser.add_argument("--fast-chunk-size", type=int, default=2048, help="fast: chunk_size")
    parser.add_argument("--pipeline-batch-size", type=int, default=32, help="ceiling, rss: batch_size")
    parser.add_argument("--pipeline-chunk-size", type=int, default=2048, help="ceiling, rss: chunk_size")
    parser.add_argument("--year-size", type=int, default=100_000, help="ceiling, rss: papers per year")
    parser.add_argument("--years", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--paced-rates", default="5000,15000", help="paced: the engine's papers/s (GPU-like)")
    parser.add_argument("--paced-years", default="1,4", help="paced: backlogs, in years of --year-size")
    parser.add_argument("--paced-batch-size", type=int, default=256, help="paced: batch_size (gpu_check's)")
    parser.add_argument("--paced-chunk-size", type=int, default=16_384, help="paced: chunk_size (gpu_check's)")


def _child(args: argparse.Namespace, part: str) -> dict[str, Any]:
    script = Path(__file__).resolve().parents[1] / "bench.py"
    argv = [sys.executable, str(script), "scale", "--part", part, "--year-size", str(args.year_size)]
    if part == "paced":
        for name in ("paced_rates", "paced_years", "paced_batch_size", "paced_chunk_size"):
            argv += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    elif part in ("ray", "fast"):
        names = ("n", "papers", "repeats", "actors", "cpus_per_actor", "ray_cpus", "batch_size", "chunk_size")
        for name in (*names, "max_length", "fast_n", "fast_chunk_size"):
            argv += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    else:  # embed.py's pipeline part reads batch_size and chunk_size
        argv += ["--years", str(YEARS[part])]
        argv += ["--batch-size", str(args.pipeline_batch_size), "--chunk-size", str(args.pipeline_chunk_size)]
    print(f"scale: {part} ...", file=sys.stderr, flush=True)
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def _executor_lines(name: str, r: dict[str, Any]) -> list[str]:
    m, threads = r["median"], r.get("threads", {})
    what = r.get("model") or (
        f"MiniLM, torch threads local {threads.get('local', {}).get('torch_threads')}, "
        f"per actor {threads.get('ray', {}).get('torch_threads')}"
    )
    lines = [
        f"{name}: {r['n']:,} {r['texts'].split()[0]} papers, {what}; {r['actors']} actors x "
        f"{r['cpus_per_actor']:g} CPU, blocks of {r['block_rows']}; medians of {r['repeats']}"
    ]
    for key, label in (("rate", "ModelPatch.rate"), ("steady", "steady"), ("whole", "whole run")):
        local, ray, ratio = m[key]["local"], m[key]["ray"], m[key].get("ray_over_local")
        lines.append(
            f"  {label}: local {_num(local)}, ray {_num(ray)} papers/s, "
            f"ray/local {'-' if ratio is None else f'{ratio:.3f}'}"
        )
    lines.append(f"  load: local {m['load_seconds']['local']:.1f}s, ray {m['load_seconds']['ray']:.1f}s")
    ratio = m["steady"].get("ray_over_local")
    verdict = "too few blocks to tell" if ratio is None else ("met" if ratio >= OVERHEAD_GOAL else "NOT met")
    lines.append(f"  goal ray/local steady >= {OVERHEAD_GOAL}: {verdict}")
    return lines


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def summary(result: dict[str, Any]) -> list[str]:
    lines = []
    for name in ("ray", "fast"):
        if name in result:
            lines += _executor_lines(name, result[name])
    for part in ("ceiling", "rss"):
        if part in result:
            p = result[part]
            lines.append(
                f"{part}: {p['backlog']:,} papers in {p['seconds']}s, {p['papers_per_s']:,} papers/s, "
                f"driver peak RSS {p['peak_rss_mb']:,} MB"
            )
    for r in result.get("paced", {}).get("runs", []):
        lines.append(
            f"paced: {r['backlog']:,} papers ({r['years']} years), engine at {r['engine_papers_per_s']:,.0f} papers/s: "
            f"busy {r['engine_seconds']}s of {r['seconds']}s, engine/wall {r['ratio']:.3f} (GPU goal >= 0.9)"
        )
    if "ceiling" in result:
        ok = result["ceiling"]["papers_per_s"] >= CEILING_GOAL
        lines.append(f"  goal ceiling >= {CEILING_GOAL:,} papers/s: {'met' if ok else 'NOT met'}")
    if "ceiling" in result and "rss" in result:
        grow = result["rss"]["peak_rss_mb"] / max(1, result["ceiling"]["peak_rss_mb"])
        back = f"{result['rss']['backlog']:,} / {result['ceiling']['backlog']:,}"
        lines.append(f"  driver peak RSS {back} papers: {grow:.2f}x (flat: ~1)")
    return lines


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.part:
        return PARTS[args.part](args)
    result: dict[str, Any] = {}
    for part in ("ray", "fast", "ceiling", "rss", "paced"):
        if part not in args.skip:
            result[part] = _child(args, part)
    result["summary"] = summary(result)
    return result
