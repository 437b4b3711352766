"""Kill -9 an autopatch at random instants, again and again: the store stays readable, durable vectors are
never lost, and a final run completes with one row per paper and nothing left to do."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from support.builders import frame, row
from support.embedding import hash_vector

from papersys.config import config_from_mapping
from papersys.embed.autopatch import MAX_PARTS
from papersys.embed.coverage import coverage_by_year
from papersys.embed.text import render_texts
from papersys.store import embeddings as store
from papersys.store.layout import Layout
from papersys.store.metadata import read_year, upsert

TESTS = Path(__file__).resolve().parents[1]
DIM = 8
SCRIPT = """
import sys, time
from pathlib import Path
from papersys.config import config_from_mapping
from papersys.embed.autopatch import run_autopatch
from papersys.runtime import Runtime
from papersys.store.layout import Layout
from support.embedding import HashEngine

class SlowHash(HashEngine):
    def embed(self, texts):
        time.sleep(0.01 * len(texts))
        return super().embed(texts)

root = Path(sys.argv[1])
config = config_from_mapping({"data_dir": str(root), "embedding": {"models": [MODEL]}}, base_dir=root)
print("READY", flush=True)
report = run_autopatch(Layout(root), list(config.embedding.models), Runtime(),
                       engine_factory=lambda model, log: SlowHash(model.dim))
print("EMBEDDED", report.embedded)
"""
MODEL = {"alias": "minilm", "dim": DIM, "batch_size": 4, "chunk_size": 24}


def papers() -> pl.DataFrame:
    rng = random.Random(7)
    words = [
        "graph",
        "neural",
        "quantum",
        "field",
        "dark",
        "matter",
        "lattice",
        "gauge",
        "sparse",
        "kernel",
        "convex",
        "flow",
    ]
    rows = []
    for prefix in ("2401", "2301", "2201"):
        for n in range(1, 121):
            title = " ".join(rng.choices(words, k=rng.randint(3, 9)))
            rows.append(
                row(f"{prefix}.{n:05d}", title=title, abstract=" ".join(rng.choices(words, k=rng.randint(5, 60))))
            )
    return frame(*rows)


def run(root: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    code = SCRIPT.replace("MODEL", repr(MODEL))
    return subprocess.Popen([sys.executable, "-c", code, str(root)], env=env, stdout=subprocess.PIPE, text=True)


def valid_count(layout: Layout) -> int:
    return sum(
        int(store.read_embeddings(layout, "minilm", y, dim=DIM, vectors=False)["valid"].sum())
        for y in store.stored_years(layout, "minilm")
    )


@pytest.mark.slow
def test_kill_at_any_instant_then_rerun_converges(tmp_path: Path) -> None:
    root = tmp_path / "data"
    layout = Layout(root)
    upsert(layout, papers())
    rng = random.Random(11)
    durable = 0
    for _ in range(8):
        proc = run(root)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"  # imports done
        time.sleep(rng.uniform(0.0, 1.0))  # somewhere in planning, embedding, part writes, compactions
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        now = valid_count(layout)  # every file still readable
        assert now >= durable  # nothing that was durable is ever lost
        durable = now
    assert durable < 360, "the kills came too late to interrupt anything"
    proc = run(root)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0 and f"EMBEDDED {360 - durable}" in out

    model = config_from_mapping({"embedding": {"models": [MODEL]}}, base_dir=tmp_path).model("minilm")
    assert sum(c.valid for c in coverage_by_year(layout, model).values()) == 360
    for year in (2024, 2023, 2022):
        # what readers see (year file + parts of the killed runs that stay pending below MAX_PARTS)
        assert len(store.pending_parts(layout, "minilm", year)) <= MAX_PARTS
        rows = store.read_embeddings(layout, "minilm", year, dim=DIM)
        assert rows.height == 120 and rows["id"].n_unique() == 120 and rows["valid"].all()
        meta = read_year(layout, year)
        texts = dict(zip(meta["id"], render_texts(meta, "{title}\n{abstract}"), strict=True))
        expected = np.stack([hash_vector(texts[i], DIM) for i in rows["id"]])
        np.testing.assert_allclose(rows["vector"].to_numpy(), expected, atol=1e-6)
    again = run(root)
    assert "EMBEDDED 0" in again.communicate(timeout=60)[0]
