"""Kill ``papersys embed autopatch`` (real child processes embedding 160 papers over 17 years with the real
MiniLM) again and again: at every crash point of an autopatch run (``PAPERSYS_CRASH_AT``; several before the
model loads) and by real SIGKILLs at seeded random instants while it embeds and writes. Each kill is followed
by a rerun, which the next kill interrupts; the last rerun completes. After every kill every file opens, every
valid stored vector is the uninterrupted run's vector for that paper, and the number of valid vectors never
shrinks; at the end the store equals the uninterrupted one row for row, vector for vector.

Time is budgeted by work, not by the clock: the runs are forked from a warm launcher that imported torch and
sentence-transformers once (``warm_cli.py``; each run still loads the model's weights itself), and a random
instant is a random fraction of the time this very run takes per write, counted from its n-th write, so
it lands while there is embedding left to do however fast or slow the host is."""

from __future__ import annotations

import contextlib
import json
import random
import signal
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import NamedTuple

import numpy as np
import polars as pl
import pytest
from support.expected import expected_row
from support.papers import synthetic_papers

from papersys.embed.autopatch import MAX_PARTS
from papersys.store import embeddings as store
from papersys.store.layout import Layout
from papersys.store.metadata import conform, upsert

from .conftest import REPO, assert_store_sound, child_env, run_cli, temp_files
from .warm_cli import WarmCLI

SEED = 7411
ALIAS, DIM = "minilm", 384
ATOL = 2e-5  # batches differ after a kill (other padding): float noise, far below any real difference
PAPERS = 160  # 121 in 2024 (16 chunks), 13 in 2023 (2 chunks), 1-5 in each of 15 older years
CONFIG = (
    'data_dir = "data"\n[[embedding.models]]\n'
    f'alias = "{ALIAS}"\nchunk_size = 8\nbatch_size = 8\nmax_length = 128\n'  # short texts: a fast suite
)
# every crash point an autopatch run passes (``atomic.before_replace`` is every atomic write's)
CRASH_POINTS = {
    "atomic.before_replace",
    "embed.manifest_ready",
    "embed.coverage_cached",
    "embed.part_written",
    "embed.compacted",
    "embed.year_recorded",
}
PRELOAD = ("torch", "transformers", "sentence_transformers")  # start no thread of their own: safe to fork


class Kill(NamedTuple):
    """Die at crash point ``point`` on its ``n``-th pass; or (point "sigkill") get a SIGKILL ``fraction`` of
    this run's time per write after its ``n``-th new file version under embeddings/."""

    point: str
    n: int
    fraction: float = 0.0


def kill_plan(seed: int) -> list[Kill]:
    rng = random.Random(seed)
    return [
        Kill("atomic.before_replace", 2),  # run 1: the new manifest half-written (1 is the lock holder file)
        Kill("embed.manifest_ready", 1),  # manifest written, nothing else
        Kill("embed.coverage_cached", 1),  # coverage cache written, no vector
        Kill("embed.part_written", rng.randint(1, 3)),  # model loaded: a few durable chunks, none compacted
        Kill("atomic.before_replace", 2),  # the coverage cache half-rewritten over the parts left behind
        Kill("sigkill", rng.randint(2, 5), rng.uniform(0.0, 1.5)),  # mid-2024: 10 or more of its chunks left
        Kill("embed.compacted", 1),  # the newest year's file holds every row, its parts are still there
        Kill("embed.year_recorded", 1),  # that compaction redone without the model, then killed
        Kill("embed.coverage_cached", 1),
        Kill("embed.year_recorded", rng.randint(2, 5)),  # a few older years done
        Kill("sigkill", rng.randint(2, 4), rng.uniform(0.0, 1.5)),  # among the 12 or more older years left
    ]


def make_store(root: Path) -> Path:
    """160 papers over 17 years (most 2024, some revised old ones, a few old-style ids)."""
    papers = [p for p in synthetic_papers(PAPERS, seed=23, start=date(2024, 1, 1), days=30) if not p.deleted]
    upsert(Layout(root / "data"), conform(pl.DataFrame([expected_row(p) for p in papers])))
    config = root / "papersys.toml"
    config.write_text(CONFIG)
    return config


@pytest.fixture(scope="module")
def launcher() -> Iterator[WarmCLI]:
    warm = WarmCLI(REPO, PRELOAD, child_env())
    yield warm
    warm.close()


@pytest.fixture(scope="module")
def reference(launcher: WarmCLI, tmp_path_factory: pytest.TempPathFactory) -> Layout:
    """One uninterrupted ``papersys embed autopatch`` over the same metadata."""
    root = tmp_path_factory.mktemp("reference")
    config = make_store(root)
    status = launcher.start("--config", config, "embed", "autopatch", env=child_env(), stderr=root / "err").wait()
    assert status == 0, (root / "err").read_text()
    layout = Layout(root / "data")
    assert layout.embedding_years(ALIAS) and store.pending_parts(layout, ALIAS) == []
    return layout


def stored(layout: Layout) -> dict[int, pl.DataFrame]:
    """Per year, the rows readers see (year file + parts, one per id): id, text_hash, valid, vector."""
    return {
        year: store.read_embeddings(layout, ALIAS, year, dim=DIM).sort("id")
        for year in store.stored_years(layout, ALIAS)
    }


def file_versions(layout: Layout) -> set[tuple[str, int]]:
    """(path, mtime) of every embedding file and part: a new pair is one write (a part, a compaction)."""
    versions = set()
    for path in layout.embeddings_dir(ALIAS).rglob("*.parquet"):  # nothing when the directory is missing
        with contextlib.suppress(FileNotFoundError):  # a part compacted away since the listing
            versions.add((str(path), path.stat().st_mtime_ns))
    return versions


def run_until_killed(launcher: WarmCLI, config: Path, layout: Layout, kill: Kill) -> int:
    """One autopatch run that ``kill`` ends; its exit status (137 at a crash point, -9 for a SIGKILL)."""
    args = ["--config", config, "embed", "autopatch"]
    if kill.point != "sigkill":
        return launcher.start(*args, env=child_env({"PAPERSYS_CRASH_AT": f"{kill.point}:{kill.n}"})).wait()
    before = file_versions(layout)
    child = launcher.start(*args, env=child_env())
    seen: dict[tuple[str, int], float] = {}
    while len(seen) < kill.n and child.poll() is None:
        now = time.monotonic()
        seen.update((version, now) for version in file_versions(layout) - before - seen.keys())
        time.sleep(0.005)
    if child.poll() is None:  # n writes seen: the model is loaded and the embedding well under way
        times = sorted(seen.values())
        time.sleep(kill.fraction * (times[-1] - times[0]) / (len(times) - 1))  # this host's time per write
        child.kill(signal.SIGKILL)
    return child.wait()


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
@pytest.mark.timeout(600)  # 40-60 s on a quiet 2-core host, 4 min with both cores busy elsewhere
def test_autopatch_survives_kills_at_crash_points_and_random_instants(
    tmp_path: Path, launcher: WarmCLI, reference: Layout
) -> None:
    plan = kill_plan(SEED)
    assert {k.point for k in plan} == CRASH_POINTS | {"sigkill"}  # every crash point is hit
    config = make_store(tmp_path)
    layout = Layout(tmp_path / "data")
    want = stored(reference)
    total = sum(rows.height for rows in want.values())
    statuses: list[int] = []
    durable, durables = 0, []
    for kill in plan:
        statuses.append(run_until_killed(launcher, config, layout, kill))
        assert_store_sound(layout.root)
        now = valid_vectors_match(layout, want)
        assert now >= durable, f"{kill}: {durable - now} durable vectors lost"
        durable = now
        durables.append(now)
    # every run was killed: at its crash point (os._exit(137)) or by the SIGKILL, never after finishing
    expected = [-signal.SIGKILL if k.point == "sigkill" else 137 for k in plan]
    assert statuses == expected, list(zip(plan, statuses, strict=True))
    # and the kills landed while there was embedding left to do
    assert sum(0 < d < total for d in durables) >= 7 and durables[0] == 0, durables

    out = tmp_path / "final.json"
    final = launcher.start("--config", config, "embed", "autopatch", "--json", env=child_env(), stdout=out).wait()
    assert final == 0
    assert json.loads(out.read_text())["embedded"] == total - durable  # nothing durable was embedded twice
    assert_store_sound(layout.root)
    assert temp_files(layout.root) == []
    # what readers see equals the uninterrupted run's, row for row; parts of interrupted runs may stay
    # pending below the compaction threshold (autopatch.MAX_PARTS per year), as after any run
    assert store.stored_years(layout, ALIAS) == reference.embedding_years(ALIAS)
    got_rows, ref_rows = stored(layout), stored(reference)
    for year, ref in ref_rows.items():
        got = got_rows[year]
        assert got["id"].to_list() == ref["id"].to_list()  # one row per id
        assert got["text_hash"].to_list() == ref["text_hash"].to_list() and got["valid"].all()
        np.testing.assert_allclose(got["vector"].to_numpy(), ref["vector"].to_numpy(), atol=ATOL)
        assert len(store.pending_parts(layout, ALIAS, year)) <= MAX_PARTS
    identity = store.Manifest.IDENTITY
    got_manifest = store.read_manifest(layout, ALIAS)
    ref_manifest = store.read_manifest(reference, ALIAS)
    assert got_manifest is not None and ref_manifest is not None
    assert {k: getattr(got_manifest, k) for k in identity} == {k: getattr(ref_manifest, k) for k in identity}

    # converged: nothing left to do, and doing nothing loads no model and writes no vector (plain
    # ``python -m papersys`` processes, not forked from the launcher: no torch import to pay for)
    files = {p: p.read_bytes() for p in layout.embeddings_dir(ALIAS).rglob("*.parquet")}
    again = run_cli("--config", config, "embed", "backlog", "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["models"][0]["total"]["gaps"] == 0
    rerun = run_cli("--config", config, "embed", "autopatch", "--json")
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["embedded"] == 0 and json.loads(rerun.stdout)["models"][0]["load_seconds"] == 0
    assert {p: p.read_bytes() for p in layout.embeddings_dir(ALIAS).rglob("*.parquet")} == files
