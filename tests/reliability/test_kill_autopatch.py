"""Kill ``papersys embed autopatch`` (a real child process embedding ~300 papers with the real MiniLM) again
and again: at injected crash points (``PAPERSYS_CRASH_AT``; several before the model loads, so they cost no
model load) and by real SIGKILLs at seeded random instants while it writes. Each kill is followed by a rerun,
which the next kill interrupts; the last rerun completes. After every kill every file opens, every valid
stored vector is the uninterrupted run's vector for that paper, and the number of valid vectors never
shrinks; at the end the store equals the uninterrupted one row for row, vector for vector."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from support.expected import expected_row
from support.papers import synthetic_papers

from papersys.store import embeddings as store
from papersys.store.layout import Layout
from papersys.store.metadata import conform, upsert

from .conftest import REPO, assert_store_sound, child_env, cli, run_cli, temp_files

SEED = 7411
ALIAS, DIM = "minilm", 384
ATOL = 2e-5  # batches differ after a kill (other padding): float noise, far below any real difference
CONFIG = (
    'data_dir = "data"\n[[embedding.models]]\n'
    f'alias = "{ALIAS}"\nchunk_size = 24\nbatch_size = 16\nmax_length = 128\n'  # short texts: a fast suite
)


def kill_plan(seed: int) -> list[tuple[str, float]]:
    """(crash point, n-th pass) or ("sigkill", seconds after the run's first write under embeddings/)."""
    rng = random.Random(seed)
    return [
        ("atomic.before_replace", 2),  # run 1: the new manifest half-written (1 is the lock holder file)
        ("embed.manifest_ready", 1),  # manifest written, nothing else
        ("embed.coverage_cached", 1),  # coverage cache written, no vector
        ("embed.part_written", rng.randint(1, 3)),  # model loaded: a few durable chunks, none compacted
        ("atomic.before_replace", 2),  # the coverage cache half-rewritten over the parts left behind
        ("sigkill", rng.uniform(0.0, 0.5)),
        ("embed.compacted", 1),  # the newest year's file holds every row, its parts are still there
        ("embed.year_recorded", 1),  # that compaction redone without the model, then killed
        ("embed.coverage_cached", 1),
        ("embed.year_recorded", rng.randint(2, 5)),  # a few older years done
        ("sigkill", rng.uniform(0.0, 0.5)),
    ]


def make_store(root: Path) -> Path:
    """~300 papers over many years (most 2024, some revised old ones, a few old-style ids)."""
    papers = [p for p in synthetic_papers(310, seed=23, start=date(2024, 1, 1), days=30) if not p.deleted]
    upsert(Layout(root / "data"), conform(pl.DataFrame([expected_row(p) for p in papers])))
    config = root / "papersys.toml"
    config.write_text(CONFIG)
    return config


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    """One uninterrupted ``papersys embed autopatch`` over the same metadata."""
    root = tmp_path_factory.mktemp("reference")
    config = make_store(root)
    done = run_cli("--config", config, "embed", "autopatch", timeout=300)
    assert done.returncode == 0, done.stderr
    layout = Layout(root / "data")
    assert layout.embedding_years(ALIAS) and store.pending_parts(layout, ALIAS) == []
    return layout


def stored(layout: Layout) -> dict[int, pl.DataFrame]:
    """Per year, the rows readers see (year file + parts, one per id): id, text_hash, valid, vector."""
    return {
        year: store.read_embeddings(layout, ALIAS, year, dim=DIM).sort("id")
        for year in store.stored_years(layout, ALIAS)
    }


def embedding_files(layout: Layout) -> dict[str, int]:
    directory = layout.embeddings_dir(ALIAS)
    return {str(p): p.stat().st_mtime_ns for p in directory.rglob("*.parquet")} if directory.is_dir() else {}


def run_until_killed(config: Path, layout: Layout, kill: tuple[str, float]) -> int:
    args = ["--config", config, "embed", "autopatch"]
    point, when = kill
    if point != "sigkill":
        return run_cli(*args, env={"PAPERSYS_CRASH_AT": f"{point}:{int(when)}"}, timeout=300).returncode
    before = embedding_files(layout)
    proc = subprocess.Popen(cli(*args), cwd=REPO, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while embedding_files(layout) == before and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)  # until it writes vectors: model loaded, embedding under way
        time.sleep(when)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode


def valid_vectors_match(layout: Layout, reference: dict[int, pl.DataFrame]) -> int:
    """Every valid stored vector (and its text hash) is the reference's for that id; returns how many."""
    count = 0
    for year, rows in stored(layout).items():
        valid = rows.filter("valid")
        want = reference[year].filter(pl.col("id").is_in(valid["id"].implode()))
        assert valid["id"].to_list() == want["id"].to_list(), year
        assert valid["text_hash"].to_list() == want["text_hash"].to_list(), year
        np.testing.assert_allclose(valid["vector"].to_numpy(), want["vector"].to_numpy(), atol=ATOL)
        count += valid.height
    return count


@pytest.mark.slow
def test_autopatch_survives_kills_at_crash_points_and_random_instants(tmp_path: Path, reference: Layout) -> None:
    config = make_store(tmp_path)
    layout = Layout(tmp_path / "data")
    want = stored(reference)
    total = sum(rows.height for rows in want.values())
    killed: list[tuple[str, float]] = []
    durable, durables = 0, []
    for kill in kill_plan(SEED):
        status = run_until_killed(config, layout, kill)
        assert status in (0, 137, -signal.SIGKILL), (kill, status)
        if status != 0:
            killed.append(kill)
        assert_store_sound(layout.root)
        now = valid_vectors_match(layout, want)
        assert now >= durable, f"{kill}: {durable - now} durable vectors lost"
        durable = now
        durables.append(now)
    assert len(killed) >= 10, f"only {len(killed)} runs were killed: {killed}"
    # the kills landed while there was embedding left to do (a fast host may finish before the last one)
    assert sum(0 < d < total for d in durables) >= 7 and durables[0] == 0, durables

    final = run_cli("--config", config, "embed", "autopatch", "--json", timeout=300)
    assert final.returncode == 0, final.stderr
    assert json.loads(final.stdout)["embedded"] == total - durable  # nothing durable was embedded twice
    assert_store_sound(layout.root)
    assert store.pending_parts(layout, ALIAS) == [] and temp_files(layout.root) == []
    assert layout.embedding_years(ALIAS) == reference.embedding_years(ALIAS)
    for year in reference.embedding_years(ALIAS):
        got = pl.read_parquet(layout.embedding_file(ALIAS, year))
        ref = pl.read_parquet(reference.embedding_file(ALIAS, year))
        assert got.schema == ref.schema
        assert got["id"].to_list() == ref["id"].to_list()  # row for row, sorted, one per id
        assert got["text_hash"].to_list() == ref["text_hash"].to_list()
        np.testing.assert_allclose(got["vector"].to_numpy(), ref["vector"].to_numpy(), atol=ATOL)
    identity = store.Manifest.IDENTITY
    got_manifest = store.read_manifest(layout, ALIAS)
    ref_manifest = store.read_manifest(reference, ALIAS)
    assert got_manifest is not None and ref_manifest is not None
    assert {k: getattr(got_manifest, k) for k in identity} == {k: getattr(ref_manifest, k) for k in identity}

    # converged: nothing left to do, and doing nothing loads no model and writes no vector
    files = {p: p.read_bytes() for p in layout.embeddings_dir(ALIAS).rglob("*.parquet")}
    again = run_cli("--config", config, "embed", "backlog", "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["models"][0]["total"]["gaps"] == 0
    rerun = run_cli("--config", config, "embed", "autopatch", "--json", timeout=300)
    assert rerun.returncode == 0 and json.loads(rerun.stdout)["embedded"] == 0
    assert {p: p.read_bytes() for p in layout.embeddings_dir(ALIAS).rglob("*.parquet")} == files
