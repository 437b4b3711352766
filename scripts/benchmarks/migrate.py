"""migrate: a synthetic generation-1 legacy year (jasper_v1 1024 + conan_v1 1792 dims) through the migration script.

One ``<year>.parquet`` of --rows rows in a single row group (as the legacy files are: polars/pyarrow write a
year in one go), jasper as ``Array(Float32, 1024)``, conan as ``List(Float32)`` with about 30 % all-NaN rows
and the other poisons of the issue. The script runs in a child process three times — dry run, migration,
idempotent rerun — each timed, with its own peak RSS (``os.wait4``). Goal: memory bounded by one year.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "migrate_reference_embeddings.py"
YEAR = 2024


def generate(path: Path | str, rows: int, seed: int = 7) -> dict[str, int]:
    """Write the synthetic year; returns how many rows of each poison it holds."""
    rng = np.random.default_rng(seed)
    per_month = -(-rows // 12)
    ids = [f"{YEAR % 100:02d}{1 + i // per_month:02d}.{i % per_month + 1:05d}" for i in range(rows)]
    kind = rng.random(rows)
    versioned = kind < 0.01
    damaged = (kind >= 0.01) & (kind < 0.012)
    # a float round trip drops trailing zeros: 2403.00010 -> 2403.0001 (repaired), other ids stay as they are
    damaged_ids = [x.rstrip("0") if d and x.endswith("0") else x for x, d in zip(ids, damaged, strict=True)]
    n_damaged = sum(a != b for a, b in zip(ids, damaged_ids, strict=True))
    ids = [f"{x}v2" if v else x for x, v in zip(damaged_ids, versioned, strict=True)]
    words = np.array(["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), 7)) for _ in range(5000)])
    title = [" ".join(words[rng.integers(0, 5000, 9)]) for _ in range(rows)]
    abstract = [" ".join(words[rng.integers(0, 5000, 150)]).replace(" ", "\n", 3) for _ in range(rows)]
    jasper = rng.standard_normal((rows, 1024), dtype=np.float32)
    jasper /= np.linalg.norm(jasper, axis=1, keepdims=True)
    j_poison = rng.random(rows)
    jasper[(j_poison >= 0.01) & (j_poison < 0.015)] = 0.0  # all-zero
    frame = pl.DataFrame(
        {
            "id": ids,
            "title": title,
            "abstract": abstract,
            "authors": [["Ada Lovelace", "Alan Turing"]] * rows,
            "date": [f"{YEAR}-03-0{1 + i % 9}" for i in range(rows)],
            "categories": [["cs.LG", "stat.ML"]] * rows,
            "created": [f"{YEAR}-03-0{1 + i % 9}" for i in range(rows)],
            "updated": [None] * rows,
            "license": [None] * rows,
        },
        schema_overrides={"updated": pl.String, "license": pl.String},
    )
    frame = frame.with_columns(pl.Series("jasper_v1", jasper))
    frame = frame.with_columns(
        pl.when(pl.Series(j_poison < 0.01)).then(None).otherwise(pl.col("jasper_v1")).alias("jasper_v1")
    )
    del jasper
    conan = rng.standard_normal((rows, 1792), dtype=np.float32)
    c_poison = rng.random(rows)
    conan[c_poison < 0.30] = np.nan  # about 30 % all-NaN, as in the real files
    series = pl.Series("conan_v1", conan).cast(pl.List(pl.Float32))
    del conan
    wrong = pl.Series(c_poison >= 0.999)  # test leftovers of another model: 1024 long
    series = pl.select(pl.when(wrong).then(series.list.head(1024)).otherwise(series)).to_series().alias("conan_v1")
    frame = frame.with_columns(series)
    del series
    frame.write_parquet(path, row_group_size=rows)
    return {
        "versioned": int(versioned.sum()),
        "damaged": n_damaged,
        "jasper_null": int((j_poison < 0.01).sum()),
        "jasper_zero": int(((j_poison >= 0.01) & (j_poison < 0.015)).sum()),
        "conan_nan": int((c_poison < 0.30).sum()),
        "conan_wrong_dim": int((c_poison >= 0.999).sum()),
    }


def generate_in_child(path: Path, rows: int) -> dict[str, int]:
    """``generate`` in a child process: a child's ru_maxrss starts from its parent's (kept across exec), so
    this process must stay small for the measured children's peaks to mean anything."""
    code = f"import json; from benchmarks.migrate import generate; print(json.dumps(generate({str(path)!r}, {rows})))"
    env = {**os.environ, "PYTHONPATH": str(REPO / "scripts")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    poison: dict[str, int] = json.loads(out.stdout)
    return poison


def run_script(args: list[str], log: Path) -> tuple[float, int, int]:
    """Run the script in a child; (wall seconds, exit status, peak RSS in MB of that child)."""
    env = {k: v for k, v in os.environ.items() if k != "PAPERSYS_CONFIG"}
    with log.open("w") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, str(SCRIPT), *args], cwd=REPO, env=env, stdout=out, stderr=out)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, proc.returncode, usage.ru_maxrss // 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=150_000, help="rows of the synthetic year (default 150 k)")
    parser.add_argument("--workdir", type=Path, help="where to put the temp dir (default: system temp)")
    parser.add_argument("--keep", action="store_true", help="keep the generated file and store")


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="papersys-bench-migrate-", dir=args.workdir))
    try:
        legacy = work / "legacy"
        legacy.mkdir()
        t0 = time.perf_counter()
        poison = generate_in_child(legacy / f"{YEAR}.parquet", args.rows)
        gen_s = time.perf_counter() - t0
        size = (legacy / f"{YEAR}.parquet").stat().st_size
        print(f"generated {args.rows:,} rows, {size / 1e9:.2f} GB in {gen_s:.0f} s", file=sys.stderr)
        config = work / "papersys.toml"
        config.write_text('data_dir = "data"\n')
        results: dict[str, Any] = {}
        for name, extra in (("dry_run", ["--dry-run"]), ("migrate", []), ("rerun", [])):
            report = work / f"{name}.json"
            wall, code, rss = run_script(
                [str(legacy), "--config", str(config), "--report", str(report), *extra], work / f"{name}.log"
            )
            if code:
                raise SystemExit(f"{name} failed ({code}): {(work / f'{name}.log').read_text()[-2000:]}")
            data = json.loads(report.read_text())
            results[name] = {
                "wall_s": round(wall, 1),
                "rows_per_s": round(args.rows / wall),
                "peak_rss_mb": rss,
                "new": data["new"],
                "report_s": data["seconds"],
            }
            if name == "migrate":
                results["counts"] = data["counts"]
        store_bytes = sum(p.stat().st_size for p in (work / "data").rglob("*.parquet"))
        vectors_mb = args.rows * (1024 + 1792) * 4 / 2**20
        return {
            "rows": args.rows,
            "file_gb": round(size / 1e9, 3),
            "generate_s": round(gen_s, 1),
            "raw_vectors_mb": round(vectors_mb),
            "poison": poison,
            "runs": results,
            "store_gb": round(store_bytes / 1e9, 3),
        }
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
