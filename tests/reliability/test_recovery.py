"""What the kill and corpus suites found, one small test each: a rerun redoes the window a killed run left
unfinished, temp files of killed writers are swept, pre-flight checks stop a run before its first write,
and their messages say what is wrong and how to recover."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from support.builders import frame, row
from support.oai_server import OAIServer
from support.papers import synthetic_papers

from papersys import service
from papersys.config import config_from_mapping
from papersys.errors import StoreError
from papersys.ingest.windows import resolve_start
from papersys.runtime import Runtime
from papersys.store.atomic import write_json
from papersys.store.layout import Layout
from papersys.store.metadata import METADATA_SCHEMA, scan_all, schema_difference, upsert
from papersys.store.state import HarvestState, WindowInProgress, load_state, save_state
from papersys.store.verify import check_data_dir, sweep_state

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
TODAY = date(2026, 11, 21)


def test_an_unfinished_window_is_where_a_run_without_from_starts() -> None:
    first_run_killed = resolve_start(None, None, TODAY, overlap_days=1, initial_days=7, unfinished=date(2020, 1, 1))
    assert first_run_killed.start == date(2020, 1, 1) and "unfinished window" in first_run_killed.reason
    backfill_killed = resolve_start(
        None, date(2026, 11, 20), TODAY, overlap_days=1, initial_days=7, unfinished=date(2019, 5, 1)
    )
    assert backfill_killed.start == date(2019, 5, 1)
    # an unfinished window after the watermark is covered by the watermark's overlap; --from always wins
    assert resolve_start(None, date(2026, 11, 10), TODAY, overlap_days=1, initial_days=7,
                         unfinished=date(2026, 11, 11)).start == date(2026, 11, 9)  # fmt: skip
    assert resolve_start(date(2024, 1, 1), None, TODAY, overlap_days=1, initial_days=7,
                         unfinished=date(2020, 1, 1)).start == date(2024, 1, 1)  # fmt: skip


def test_a_rerun_without_from_redoes_the_window_a_killed_first_run_left(tmp_path: Path) -> None:
    papers = synthetic_papers(80, seed=4, start=date(2024, 1, 1), days=20)
    with OAIServer(papers, page_size=20) as srv:
        config = config_from_mapping(
            {"data_dir": "data", "ingest": {"base_url": srv.url, "request_interval_s": 0.0}}, base_dir=tmp_path
        )
        layout = Layout(config.data_dir)
        # what a first run `ingest --from 2024-01-01` killed in its first window leaves behind
        window = WindowInProgress("all", date(2024, 1, 1), date(2024, 1, 30), NOW)
        save_state(layout, HarvestState(in_progress=window))
        report = service.ingest(config, until=date(2024, 1, 20), runtime=Runtime(clock=lambda: NOW))
        first = next(r for r in srv.requests if "from" in r.params)
    assert first.params["from"] == "2024-01-01" and "unfinished window" in report.sets[0].reason
    assert scan_all(layout).select(pl.len()).collect().item() == 80
    assert load_state(layout).in_progress is None


def test_temp_files_of_dead_writers_are_swept_from_state_and_locks_but_not_a_live_ones(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    dead = 2**22 + 12345  # above the default pid_max: no such process
    leftovers = [
        layout.state_dir / f".harvest.json.{dead}.0123abcd.tmp",
        layout.state_dir / "coverage" / f".minilm.json.{dead}.0123abcd.tmp",
        layout.locks_dir / f".metadata.holder.json.{dead}.0123abcd.tmp",
    ]
    live = layout.state_dir / f".daemon.json.{os.getpid()}.0123abcd.tmp"
    for path in [*leftovers, live]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{")
    write_json({"kept": True}, layout.harvest_state)
    assert sweep_state(layout) == 3
    assert not any(p.exists() for p in leftovers) and live.exists() and layout.harvest_state.exists()


def test_data_dir_checks(tmp_path: Path) -> None:
    check_data_dir(tmp_path / "new" / "data", write=True)  # missing but creatable: fine
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="data_dir is not a directory"):
        check_data_dir(tmp_path / "file", write=False)
    with pytest.raises(StoreError, match=r"cannot be created: .*file is not a directory"):
        check_data_dir(tmp_path / "file" / "data", write=True)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "state").write_text("x")
    with pytest.raises(StoreError, match=r"data/state: is not a directory \(move it aside"):
        check_data_dir(tmp_path / "data", write=False)


def test_a_torn_year_file_stops_autopatch_before_it_writes_a_manifest(tmp_path: Path) -> None:
    config = config_from_mapping({"data_dir": "data"}, base_dir=tmp_path)
    layout = Layout(config.data_dir)
    upsert(layout, frame(row("2401.00001"), row("2301.00001")))
    torn = layout.metadata_file(2023)
    torn.write_bytes(torn.read_bytes()[:100])

    def no_engine(*_args: object) -> object:
        raise AssertionError("no model may be loaded for a store that cannot be read")

    with pytest.raises(StoreError, match=r"2023.parquet: not a readable Parquet file.*restore it from a backup"):
        service.embed_autopatch(config, engine_factory=no_engine)  # type: ignore[arg-type]
    assert not layout.embeddings_root.exists()  # no manifest, no part, nothing


def test_a_schema_difference_is_said_in_one_short_line() -> None:
    got = dict(METADATA_SCHEMA) | {"created": pl.String(), "extra": pl.Int64()}
    del got["doi"]
    assert schema_difference(got, METADATA_SCHEMA) == "lacks doi; unexpected extra; created is String, not Date"
