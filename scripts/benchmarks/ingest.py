"""ingest: harvest throughput (records/s) of `papersys ingest` against a local OAI server, spacing 0.

Starts tests/support/oai_server.py as its own process with N synthetic papers, then runs the real
service.ingest (HTTP fetch, strict parse, record extraction, spool, per-window merge, checkpoint) into
a fresh data directory per repeat. Reports the median wall time and records/s, plus a breakdown of one
extra profiled run (where the time goes). Target: ≥ 20,000 records/s on the 2-core dev machine, so a
full arXiv harvest (≈ 3 M records, ≈ 2,300 pages) is bounded by arXiv's politeness limit, not our CPU.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SERVER = REPO / "tests" / "support" / "oai_server.py"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--papers", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=1300, help="arXiv serves ~1,300 records a page")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prefix", choices=("arXiv", "arXivRaw"), default="arXiv")
    parser.add_argument("--profile", action="store_true", help="add one cProfile'd run and print its top functions")


def _harvest(url: str, prefix: str, data_dir: Path) -> tuple[float, Any]:
    from papersys import service
    from papersys.config import config_from_mapping

    config = config_from_mapping(
        {
            "data_dir": str(data_dir),
            "ingest": {"base_url": url, "metadata_prefix": prefix, "request_interval_s": 0.0, "window_days": 60},
        },
        base_dir=data_dir.parent,
    )
    t0 = time.perf_counter()
    report = service.ingest(config, start=date(2024, 1, 1), until=date(2024, 3, 31))
    return time.perf_counter() - t0, report


def run(args: argparse.Namespace) -> dict[str, Any]:
    """records_per_s: the harvest (report.seconds); command_*: the whole `service.ingest` call."""
    cmd = [
        sys.executable,
        str(SERVER),
        "--papers",
        str(args.papers),
        "--page-size",
        str(args.page_size),
        "--seed",
        str(args.seed),
        "--warm",
        args.prefix,
        "--start",
        "2024-01-01",
        "--days",
        "60",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    scratch = Path(tempfile.mkdtemp(prefix="papersys-bench-ingest-"))
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        times, walls, report = [], [], None
        _harvest(url, args.prefix, scratch / "warm-up" / "data")  # imports, server caches: not measured
        for i in range(args.repeats):
            seconds, report = _harvest(url, args.prefix, scratch / f"run{i}" / "data")
            times.append(report.seconds)  # the harvest itself: fetch, parse, spool, merge, checkpoint
            walls.append(seconds)  # the whole service call: + lock, job record, coverage refresh
            if report.new != args.papers:
                raise RuntimeError(f"stored {report.new} new records, expected {args.papers}")
        profile: list[str] = []
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            _harvest(url, args.prefix, scratch / "profiled" / "data")
            prof.disable()
            stats = pstats.Stats(prof).sort_stats("cumulative")
            for func, (_cc, _nc, tt, ct, _callers) in sorted(stats.stats.items(), key=lambda kv: -kv[1][3])[:25]:  # type: ignore[attr-defined]
                profile.append(f"{ct:7.2f}s cum {tt:7.2f}s own  {func[2]} ({Path(func[0]).name}:{func[1]})")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(scratch, ignore_errors=True)
    median = statistics.median(times)
    assert report is not None
    result: dict[str, Any] = {
        "papers": args.papers,
        "page_size": args.page_size,
        "prefix": args.prefix,
        "pages": report.pages,
        "median_s": round(median, 2),
        "records_per_s": round(args.papers / median),
        "runs_s": [round(t, 2) for t in times],
        "command_median_s": round(statistics.median(walls), 2),
        "command_records_per_s": round(args.papers / statistics.median(walls)),
        "target_records_per_s": 20_000,
    }
    if profile:
        result["profile_top"] = profile
    return result
