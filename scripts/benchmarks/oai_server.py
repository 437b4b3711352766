"""oai_server: how fast the OAI test server (tests/support/oai_server.py) serves a full ListRecords harvest.

Starts the server as its own process (as harvester benchmarks do), then fetches every page with a bare
requests.Session (bytes only: the server's cost, not a parser's) and once more with strict lxml parsing
(what a careful client adds). Reports startup (generate + render), records/s and MB/s, medians of repeats.
The harvester benchmark needs ≥ 20k records/s client-side, so the server must be well above that.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
from lxml import etree

REPO = Path(__file__).resolve().parents[2]
SERVER = REPO / "tests" / "support" / "oai_server.py"
OAI = "{http://www.openarchives.org/OAI/2.0/}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--papers", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prefix", choices=("arXiv", "arXivRaw"), default="arXiv")


def _harvest(url: str, prefix: str, parse: bool) -> tuple[int, int, int]:
    """(records, pages, bytes) of one full list."""
    records = pages = size = 0
    params: dict[str, str] = {"verb": "ListRecords", "metadataPrefix": prefix}
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    with requests.Session() as session:
        while True:
            resp = session.get(url, params=params, timeout=60)
            resp.raise_for_status()
            body = resp.content
            pages += 1
            size += len(body)
            if parse:
                root = etree.fromstring(body, parser)
                records += len(root.findall(f"{OAI}ListRecords/{OAI}record"))
                token = root.findtext(f"{OAI}ListRecords/{OAI}resumptionToken")
            else:
                records += body.count(b"<record>")
                start = body.rfind(b"<resumptionToken")
                token = None
                if start >= 0 and not body[start:].startswith(b"<resumptionToken/>"):
                    token = body[body.index(b">", start) + 1 : body.index(b"</resumptionToken>", start)].decode()
            if not token:
                return records, pages, size
            params = {"verb": "ListRecords", "resumptionToken": token}


def run(args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, str(SERVER), "--papers", str(args.papers), "--page-size", str(args.page_size)]
    cmd += ["--seed", str(args.seed), "--warm", args.prefix]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        startup = time.perf_counter() - started
        results: dict[str, list[float]] = {"bytes": [], "parsed": []}
        records = pages = size = 0
        for _ in range(args.repeats):
            for mode in ("bytes", "parsed"):
                t0 = time.perf_counter()
                records, pages, size = _harvest(url, args.prefix, parse=mode == "parsed")
                results[mode].append(time.perf_counter() - t0)
        if records != args.papers:
            raise RuntimeError(f"harvested {records} records, expected {args.papers}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    fetch = statistics.median(results["bytes"])
    parsed = statistics.median(results["parsed"])
    return {
        "papers": args.papers,
        "page_size": args.page_size,
        "prefix": args.prefix,
        "pages": pages,
        "mb": round(size / 1e6, 1),
        "startup_s": round(startup, 2),
        "fetch_s": round(fetch, 3),
        "fetch_records_per_s": round(records / fetch),
        "fetch_mb_per_s": round(size / 1e6 / fetch, 1),
        "fetch_and_parse_s": round(parsed, 3),
        "fetch_and_parse_records_per_s": round(records / parsed),
        "runs_s": {k: [round(v, 3) for v in vs] for k, vs in results.items()},
    }
