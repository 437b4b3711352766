"""reliability: what the safety checks cost — the pre-flight store check, the data-dir check, the temp-file
sweep and an unset crash point — on a synthetic full-size metadata store (3 M papers over 35 year files).

The pre-flight check runs before every ingest, snapshot load, autopatch and migration; it must stay far
below a second at full size, or users would pay for safety on every run.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
import timeit
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--papers", type=int, default=3_000_000)
    parser.add_argument("--years", type=int, default=35, help="year files (1991 onwards)")
    parser.add_argument("--repeats", type=int, default=7)


def _year_frame(year: int, rows: int) -> pl.DataFrame:
    from papersys.store.metadata import conform

    yy = year % 100
    if year >= 2007:  # new-style ids of that year; old-style before (the year rule maps both back)
        ids = pl.Series([f"{yy:02d}{1 + i % 12:02d}.{i // 12:05d}" for i in range(rows)])
    else:
        ids = pl.Series([f"hep-th/{yy:02d}{1 + i % 12:02d}{i // 12:03d}" for i in range(rows)])
    day = date(year, 6, 1)
    frame = pl.DataFrame(
        {
            "id": ids,
            "title": pl.Series([f"A title about topic {i % 997}" for i in range(rows)]),
            "abstract": pl.Series([f"An abstract of paper {i} with some words in it." for i in range(rows)]),
            "authors": pl.Series([["Ada Lovelace", "Alan Turing"]] * rows),
            "categories": pl.Series([["cs.LG", "stat.ML"]] * rows),
            "primary_category": pl.Series(["cs.LG"] * rows),
            "created": pl.Series([day] * rows),
            "datestamp": pl.Series([day] * rows),
            "source": pl.Series(["snapshot"] * rows),
        }
    )
    return conform(frame).sort("id")


def _median_ms(fn: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 3)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from papersys.faults import crash_point
    from papersys.store.atomic import write_parquet
    from papersys.store.layout import Layout
    from papersys.store.verify import check_data_dir, sweep_state, verify_metadata_store

    root = Path(tempfile.mkdtemp(prefix="papersys-bench-reliability-"))
    try:
        layout = Layout(root / "data")
        per_year = args.papers // args.years
        t0 = time.perf_counter()
        for year in range(1991, 1991 + args.years):
            write_parquet(_year_frame(year, per_year), layout.metadata_file(year))
        build_s = time.perf_counter() - t0
        store_bytes = sum(p.stat().st_size for p in layout.metadata_dir.glob("*.parquet"))
        for name in ("harvest.json", "daemon.json", "stats.json"):
            (layout.state_dir / name).parent.mkdir(parents=True, exist_ok=True)
            (layout.state_dir / name).write_text("{}")
        (layout.state_dir / "coverage").mkdir(exist_ok=True)
        layout.locks_dir.mkdir(parents=True, exist_ok=True)

        verify_metadata_store(layout)  # once to warm the page cache, as on a host that ran before
        calls = 1_000_000
        unset_ns = timeit.timeit(lambda: crash_point("harvest.page"), number=calls) / calls * 1e9
        return {
            "papers": per_year * args.years,
            "year_files": args.years,
            "store_mb": round(store_bytes / 1e6, 1),
            "build_s": round(build_s, 1),
            "preflight_verify_metadata_ms": _median_ms(lambda: verify_metadata_store(layout), args.repeats),
            "check_data_dir_ms": _median_ms(lambda: check_data_dir(layout.root, write=True), args.repeats),
            "sweep_state_ms": _median_ms(lambda: sweep_state(layout), args.repeats),
            "crash_point_unset_ns_per_call": round(unset_ns, 1),
            "repeats": args.repeats,
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)
