"""query_encoder: cold-process time to embed one search query, ONNX query encoder vs sentence-transformers.

Exports MiniLM once (or uses ``--dir``), then starts fresh ``python -c`` processes that import, open the
encoder and embed one query, alternating the two ways; reports the median wall time from spawn to exit of
``--repeats`` runs each, with the child's own import / open / embed split and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

QUERY = "graph neural networks for molecular property prediction"
ONNX = """
import json, sys, time
t0 = time.perf_counter()
from pathlib import Path
from papersys.config import ModelConfig
from papersys.search.encoder import QueryEncoder
t1 = time.perf_counter()
encoder = QueryEncoder.open(Path(sys.argv[1]), ModelConfig())
t2 = time.perf_counter()
encoder.embed([sys.argv[2]])
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "open": t2 - t1, "embed": t3 - t2}))
"""
ST = """
import json, sys, time
t0 = time.perf_counter()
from papersys.config import ModelConfig
from papersys.embed.engines.st import SentenceTransformerEngine
import sentence_transformers
t1 = time.perf_counter()
engine = SentenceTransformerEngine(ModelConfig(device="cpu"))
t2 = time.perf_counter()
engine.embed([sys.argv[2]])
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "open": t2 - t1, "embed": t3 - t2}))
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dir", type=Path, help="an existing export (default: export MiniLM to a temp dir)")


def _cold(code: str, directory: Path) -> dict[str, float]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code, str(directory), QUERY], capture_output=True, text=True, check=True, env=env
    )
    wall = time.perf_counter() - start
    return {"wall": wall, **json.loads(out.stdout.strip().splitlines()[-1])}


def _summary(runs: list[dict[str, float]]) -> dict[str, Any]:
    return {key: round(statistics.median(r[key] for r in runs), 3) for key in runs[0]} | {
        "wall_all": [round(r["wall"], 2) for r in runs]
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from papersys.config import ModelConfig
    from papersys.search.encoder import export_query_encoder

    with tempfile.TemporaryDirectory() as tmp:
        directory = args.dir
        export_s = None
        if directory is None:
            directory = Path(tmp) / "encoder"
            start = time.perf_counter()
            export_query_encoder(ModelConfig(), directory, check_texts=[QUERY])
            export_s = round(time.perf_counter() - start, 1)
        load_before = os.getloadavg()
        onnx: list[dict[str, float]] = []
        st: list[dict[str, float]] = []
        for i in range(args.repeats):
            pair = [(onnx, ONNX), (st, ST)]
            for runs, code in pair if i % 2 == 0 else reversed(pair):
                runs.append(_cold(code, directory))
        return {
            "export_s": export_s,
            "onnx": _summary(onnx),
            "sentence_transformers": _summary(st),
            "loadavg_before_after": [round(load_before[0], 1), round(os.getloadavg()[0], 1)],
            "cpus": os.cpu_count(),
        }
