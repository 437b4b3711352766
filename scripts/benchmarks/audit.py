"""audit: identifiers/s of `papersys audit` (ListIdentifiers fetch + parse, comparison with the store), spacing 0.

Starts tests/support/oai_server.py as its own process with N synthetic papers over a 30-day window (a month
of arXiv is ~25,000 new papers, but a month's datestamps, re-stamped old papers included, reach ~700,000).
A warm-up listing fills the server's caches and gives the ids; the store is then written from those ids
with 1 % of them left out (so the comparison finds real gaps). Each repeat runs the real ``run_audit``
(HTTP through the harvester's client, strict parse, header extraction, store comparison) and checks it
found exactly the ids left out. Goal: ≥ 50,000 identifiers/s, so a monthly audit is bounded by arXiv's
politeness limit (one request per 3 s), not by us.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SERVER = REPO / "tests" / "support" / "oai_server.py"
START, DAYS = date(2024, 1, 1), 30


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--papers", type=int, default=700_000)
    parser.add_argument("--page-size", type=int, default=10_000, help="identifiers per ListIdentifiers page")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)


def _config(url: str, data_dir: Path) -> Any:
    from papersys.config import config_from_mapping

    return config_from_mapping(
        {"data_dir": str(data_dir), "ingest": {"base_url": url, "request_interval_s": 0.0}},
        base_dir=data_dir.parent,
    )


def _request() -> Any:
    from papersys.ingest.audit import AuditRequest

    return AuditRequest(START, START + timedelta(days=DAYS - 1), (None,))


def _write_store(listed: Any, data_dir: Path) -> set[str]:
    """A store holding every listed live id but 1 %; returns the ids left out."""
    import polars as pl

    from papersys.store.layout import Layout
    from papersys.store.metadata import conform, upsert

    live = listed.filter(~pl.col("deleted"))
    left_out = live.filter(pl.int_range(pl.len()) % 100 == 7)
    kept = live.join(left_out, on="id", how="anti")
    rows = kept.select(
        "id",
        "datestamp",
        title=pl.lit("t"),
        abstract=pl.lit("a"),
        primary_category=pl.lit("cs.LG"),
        categories=pl.lit(["cs.LG"]),
        created=pl.col("datestamp"),
        source=pl.lit("oai"),
    )
    upsert(Layout(data_dir), conform(rows))
    return set(left_out["id"].to_list())


def run(args: argparse.Namespace) -> dict[str, Any]:
    from papersys.ingest.audit import compare, list_identifiers, run_audit
    from papersys.ingest.oai import OAIClient
    from papersys.runtime import Runtime
    from papersys.store.layout import Layout

    cmd = [
        sys.executable,
        str(SERVER),
        *("--papers", str(args.papers), "--page-size", str(args.page_size), "--seed", str(args.seed)),
        *("--start", START.isoformat(), "--days", str(DAYS), "--warm", "none"),
    ]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    scratch = Path(tempfile.mkdtemp(prefix="papersys-bench-audit-"))
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        server_start = time.perf_counter() - t0
        data_dir = scratch / "data"
        config = _config(url, data_dir)
        runtime = Runtime()
        listed = list_identifiers(OAIClient(config.ingest, runtime), config.ingest, _request(), runtime)  # warm-up
        left_out = _write_store(listed, data_dir)
        times, compare_times, report = [], [], None
        for _ in range(args.repeats):
            t1 = time.perf_counter()
            compare(Layout(data_dir), listed)
            compare_times.append(time.perf_counter() - t1)
            report = run_audit(config.ingest, Layout(data_dir), _request(), runtime)
            times.append(report.seconds)
            if set(report.gaps["missing"]) != left_out or report.gaps["stale"] or report.gaps["deleted"]:
                raise RuntimeError("the audit did not find exactly the ids left out of the store")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(scratch, ignore_errors=True)
    assert report is not None
    median = statistics.median(times)
    compare_median = statistics.median(compare_times)
    return {
        "papers": args.papers,
        "listed": report.listed,
        "page_size": args.page_size,
        "pages": report.requests,
        "gaps_found": report.found,
        "server_start_s": round(server_start, 1),
        "median_s": round(median, 2),
        "identifiers_per_s": round(report.listed / median),
        "runs_s": [round(t, 2) for t in times],
        "comparison_only_median_s": round(compare_median, 3),
        "target_identifiers_per_s": 50_000,
    }
