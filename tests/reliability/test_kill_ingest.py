"""Kill ``papersys ingest`` again and again: a real child process harvesting a real OAI-PMH server on
127.0.0.1 (2,400 records, ~45 pages, 5 windows), killed at injected crash points (``PAPERSYS_CRASH_AT``:
``os._exit(137)``, no cleanup, like SIGKILL) and by real SIGKILLs after seeded random delays. Each kill is
followed by a rerun (``papersys ingest`` resuming from its checkpoint), which the next kill interrupts in
turn; the last rerun completes. After every kill every file opens, no id is duplicated and every stored row
is the very row the uninterrupted run stores; at the end the store equals the uninterrupted one.

Time is budgeted by work, not by the clock: a random instant is counted from the run's n-th request (the
server counts them) plus a random fraction of the time this very run takes per request, so every SIGKILL
lands while the harvest is under way however fast or slow the host is."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import NamedTuple

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from support.oai_server import OAIServer
from support.papers import synthetic_papers

from papersys import service
from papersys.config import load_config
from papersys.store.layout import Layout
from papersys.store.metadata import read_deletions, scan_all
from papersys.store.state import load_state

from .conftest import REPO, assert_store_sound, child_env, cli, fingerprint, run_cli, temp_files

SEED = 20261121
PAPERS = synthetic_papers(2400, seed=11, start=date(2024, 1, 1), days=40, deleted_fraction=0.03)
FROM, UNTIL = date(2024, 1, 1), date(2024, 2, 9)


class Kill(NamedTuple):
    """Die at crash point ``point`` on its ``n``-th pass; or (point "sigkill") get a SIGKILL ``fraction`` of
    this run's time per request after its ``n``-th request reached the server."""

    point: str
    n: int
    fraction: float = 0.0


def kill_plan(seed: int) -> list[Kill]:
    """Where each run dies. Points in order of a run: lock holder and harvest.json writes
    (atomic.before_replace 1-2), pages, spool parts, tombstones, year files, merged window, checkpoint.
    A run starts at the window the last one left unfinished: 8 or more pages to go."""
    rng = random.Random(seed)
    return [
        Kill("harvest.page", rng.randint(2, 7)),  # mid first window: nothing merged yet
        Kill("atomic.before_replace", 2),  # harvest.json's in-progress window half-saved: a temp file, the old file
        Kill("metadata.tombstones_written", 1),  # tombstones saved, no year merged
        Kill("metadata.year_written", rng.randint(3, 25)),  # a window half-merged into the year files
        Kill("harvest.merged", 1),  # all merged, spool not cleared, checkpoint not advanced
        Kill("sigkill", rng.randint(1, 4), rng.uniform(0.0, 2.0)),
        Kill("harvest.before_checkpoint", 2),  # one window committed, the next merged but not checkpointed
        Kill("atomic.before_replace", rng.randint(5, 40)),  # a spool part or a year file half-written
        Kill("sigkill", rng.randint(1, 4), rng.uniform(0.0, 2.0)),
        Kill("harvest.page", rng.randint(9, 14)),  # in a later window
        Kill("metadata.year_written", rng.randint(30, 60)),
        Kill("sigkill", rng.randint(1, 4), rng.uniform(0.0, 2.0)),
        Kill("harvest.before_checkpoint", 1),
    ]


def write_config(root: Path, url: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "papersys.toml"
    path.write_text(
        f'data_dir = "data"\n[ingest]\nbase_url = "{url}"\nrequest_interval_s = 0.0\nwindow_days = 8\n'
        "backoff_base_s = 0.1\nmax_retries = 3\ntimeout_s = 30.0\n"
    )
    return path


@pytest.fixture(scope="module")
def server() -> Iterator[OAIServer]:
    with OAIServer(PAPERS, page_size=60) as srv:
        srv.warm()
        yield srv


@pytest.fixture(scope="module")
def reference(server: OAIServer, tmp_path_factory: pytest.TempPathFactory) -> Layout:
    """The store of one uninterrupted run (the same service the CLI calls, in this process)."""
    config = load_config(write_config(tmp_path_factory.mktemp("reference"), server.url))
    report = service.ingest(config, start=FROM, until=UNTIL)
    assert report.records == len(PAPERS) and report.pages >= 40 and report.sets[0].windows == 5
    return Layout(config.data_dir)


def run_until_killed(config: Path, server: OAIServer, kill: Kill, first: bool) -> int:
    """One ``papersys ingest`` run that ``kill`` ends; its exit status (137 at a crash point, -9 for a SIGKILL)."""
    args = ["--config", config, "ingest", "--until", UNTIL.isoformat()]
    if first:
        args += ["--from", FROM.isoformat()]
    if kill.point != "sigkill":
        return run_cli(*args, env={"PAPERSYS_CRASH_AT": f"{kill.point}:{kill.n}"}).returncode
    seen = server.request_count
    proc = subprocess.Popen(cli(*args), cwd=REPO, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        first_request: float | None = None
        while server.request_count <= seen + kill.n and proc.poll() is None:
            if first_request is None and server.request_count > seen:
                first_request = time.monotonic()
            time.sleep(0.002)
        if proc.poll() is None:  # n requests done and the next one asked for: the harvest is under way
            per_request = (time.monotonic() - (first_request or time.monotonic())) / kill.n  # on this host, now
            time.sleep(kill.fraction * per_request)
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
    return proc.returncode


def assert_subset_of_reference(layout: Layout, reference: Layout) -> int:
    """Every stored row is the row the uninterrupted run stores for that id; returns the rows stored."""
    got = scan_all(layout).collect().sort("id")
    want = scan_all(reference).collect().sort("id")
    assert_frame_equal(got, want.filter(pl.col("id").is_in(got["id"].implode())))
    tombs = read_deletions(layout)
    assert tombs.join(read_deletions(reference), on=["id", "datestamp"], how="anti").height == 0
    return got.height


@pytest.mark.slow
@pytest.mark.timeout(600)  # 25-40 s on a quiet 2-core host, under 3 min with both cores busy elsewhere
def test_ingest_survives_kills_at_crash_points_and_random_instants(
    tmp_path: Path, server: OAIServer, reference: Layout
) -> None:
    config = write_config(tmp_path, server.url)
    layout = Layout(tmp_path / "data")
    plan = kill_plan(SEED)
    statuses = []
    for n, kill in enumerate(plan):
        statuses.append(run_until_killed(config, server, kill, first=n == 0))
        assert_store_sound(layout.root)
        assert_subset_of_reference(layout, reference)
    # every run was killed: at its crash point (os._exit(137)) or by the SIGKILL, never after finishing
    expected = [-signal.SIGKILL if k.point == "sigkill" else 137 for k in plan]
    assert statuses == expected, list(zip(plan, statuses, strict=True))

    final = run_cli("--config", config, "ingest", "--until", UNTIL.isoformat())
    assert final.returncode == 0, final.stderr
    assert_store_sound(layout.root)
    assert layout.metadata_years() == reference.metadata_years()
    for year in reference.metadata_years():
        assert_frame_equal(pl.read_parquet(layout.metadata_file(year)), pl.read_parquet(reference.metadata_file(year)))
    assert_frame_equal(read_deletions(layout), read_deletions(reference))
    state = load_state(layout)
    assert state.watermark("all") == UNTIL and state.in_progress is None
    assert temp_files(layout.root) == []  # every temp file a kill left was swept
    assert not list(layout.locks_dir.glob("*.holder.json"))
    assert not any(layout.spool_dir.rglob("*.parquet"))

    # a rerun after success changes no store file
    before = fingerprint(layout.metadata_dir)
    again = run_cli("--config", config, "ingest", "--until", UNTIL.isoformat())
    assert again.returncode == 0, again.stderr
    assert "0 new, 0 updated" in again.stdout and fingerprint(layout.metadata_dir) == before
