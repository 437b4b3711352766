"""``ingest --snapshot``: a generated Kaggle snapshot loaded into a real Parquet store, asserted exactly."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal
from support.snapshots import Snapshot, build_snapshot, compress, kaggle_record

from papersys.cli import cli, main
from papersys.config import IngestConfig
from papersys.errors import Interrupted, SnapshotError
from papersys.ingest.records import MetadataBatch
from papersys.ingest.snapshot.load import SnapshotReport, load_snapshot
from papersys.runtime import ProgressTask, Runtime
from papersys.store.ids import paper_year
from papersys.store.layout import Layout
from papersys.store.metadata import read_year, scan_all, upsert
from papersys.store.state import Checkpoint, HarvestState, load_state, save_state

CLOCK = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def runtime(**kwargs: object) -> Runtime:
    return Runtime(clock=lambda: CLOCK, **kwargs)  # type: ignore[arg-type]


def store(layout: Layout) -> pl.DataFrame:
    return scan_all(layout).collect().sort("id")


def row(layout: Layout, arxiv_id: str) -> dict[str, object]:
    rows = read_year(layout, paper_year(arxiv_id)).filter(pl.col("id") == arxiv_id).to_dicts()
    assert len(rows) == 1, arxiv_id
    return rows[0]


def oai_row(arxiv_id: str, title: str, datestamp: date) -> pl.DataFrame:
    batch = MetadataBatch()
    batch.add(
        id=arxiv_id, title=title, abstract="From OAI.", authors=["A. Harvester"], categories=["hep-th"],
        created=date(2007, 4, 2), updated=None, doi=None, journal_ref=None, comments=None, license=None,
        datestamp=datestamp, source="oai",
    )  # fmt: skip
    return batch.records()


@pytest.fixture
def snap(tmp_path: Path) -> Snapshot:
    return build_snapshot(tmp_path / "arxiv-metadata-oai-snapshot.json")


def load(
    layout: Layout, path: Path, config: IngestConfig | None = None, *, chunk_lines: int = 150, **kwargs: object
) -> SnapshotReport:
    config = (config or IngestConfig()).model_copy(update={"snapshot_chunk_lines": chunk_lines})
    kwargs.setdefault("runtime", runtime())
    return load_snapshot(config, layout, path, **kwargs)  # type: ignore[arg-type]


def test_the_store_holds_exactly_the_valid_lines(tmp_path: Path, snap: Snapshot) -> None:
    layout = Layout(tmp_path / "data")
    report = load(layout, snap.path, chunk_lines=37)

    frame = store(layout)
    assert frame["id"].to_list() == sorted(snap.records)
    assert frame["source"].unique().to_list() == ["snapshot"]
    per_year: dict[int, int] = {}
    for arxiv_id in snap.records:
        per_year[paper_year(arxiv_id)] = per_year.get(paper_year(arxiv_id), 0) + 1
    assert {y: read_year(layout, y).height for y in layout.metadata_years()} == per_year
    assert min(per_year) == 1991 and max(per_year) == 2025

    assert report.lines == snap.lines
    assert report.bad == len(snap.bad) and list(report.bad_samples) == snap.bad
    assert report.records == 285 and report.kept == 285 and report.filtered == 0
    assert report.new == len(snap.records) == frame.height
    assert {y: c["rows"] for y, c in report.years.items()} == per_year

    # field by field: a multi-version new-style paper with Unicode authors, escaped in the file
    first = row(layout, "0704.0001")
    assert first == {
        "id": "0704.0001",
        "title": "Quantum groups and integrable systems (0)",
        "abstract": "We study the model number 0. Its spectrum ≈ 0 is computed.",
        "authors": ["C. Balázs"],
        "categories": ["hep-th"],
        "primary_category": "hep-th",
        "created": date(2007, 4, 1),
        "updated": None,
        "doi": "10.1103/PhysRevD.0",
        "journal_ref": "Phys. Rev. D 0, 0 (2008)",
        "comments": None,
        "license": None,
        "datestamp": date(2007, 4, 1),
        "source": "snapshot",
    }
    three = row(layout, "0903.0003")  # i=2: three versions two months apart, a suffix, CJK names
    assert (three["created"], three["updated"], three["datestamp"]) == (
        date(2009, 3, 3),
        date(2009, 7, 3),
        date(2009, 7, 3),
    )
    assert three["authors"] == ["J.-P. O'Brien", "Martin Luther King Jr.", "娜 李"]
    assert three["title"] == "Erdős–Rényi graphs: a naïve approach (2)"  # noqa: RUF001
    assert three["categories"] == ["math-ph", "math.MP"]
    old = row(layout, "solv-int/9202002")
    assert (old["created"], old["updated"]) == (date(1992, 2, 2), date(1992, 4, 2))
    assert (old["categories"], old["primary_category"]) == (["math.AG", "cs.CV"], "math.AG")
    assert row(layout, "2301.00777")["title"].endswith("(7)")  # version suffix stripped
    assert row(layout, "2301.00001")["datestamp"] == date(2025, 6, 30)  # the newer duplicate line won
    assert row(layout, "2302.00002")["datestamp"] == date(2024, 5, 5)  # an older later line did not
    # bad lines never reach the store
    assert frame.filter(pl.col("id").is_in(["0801.9999", "0704.0999", "0704.0997"])).height == 0


def test_watermark_set_when_absent_and_kept_when_present(tmp_path: Path, snap: Snapshot) -> None:
    layout = Layout(tmp_path / "data")
    report = load(layout, snap.path)
    assert report.newest_update_date == snap.newest == date(2026, 1, 11)
    assert report.watermark_actions == {"all": "set"}
    checkpoint = load_state(layout).checkpoints["all"]
    assert (checkpoint.watermark, checkpoint.source, checkpoint.updated_at) == (snap.newest, "snapshot", CLOCK)

    other = Layout(tmp_path / "other")
    save_state(other, HarvestState({"all": Checkpoint(date(2026, 1, 5), CLOCK, "oai")}))
    report = load(other, snap.path)
    assert report.watermark_actions == {"all": "kept"}
    assert load_state(other).watermark("all") == date(2026, 1, 5)
    assert any("kept at 2026-01-05" in line for line in report.summary())


def test_sets_filter_and_per_set_watermarks(tmp_path: Path, snap: Snapshot) -> None:
    layout = Layout(tmp_path / "data")
    save_state(layout, HarvestState({"cs": Checkpoint(date(2020, 1, 1), CLOCK, "oai")}))
    config = IngestConfig(sets=("physics:hep-th", "cs"))
    report = load(layout, snap.path, config)
    kept = store(layout)
    # hep-th papers, and cs.LG / cs.CV cross-lists; math-ph, astro-ph.CO and cond-mat papers are filtered
    assert set(kept["primary_category"].unique()) == {"hep-th", "cs.LG", "math.AG"}
    assert report.kept == kept.height and report.filtered == report.records - report.kept > 0
    assert report.watermark_actions == {"physics:hep-th": "set", "cs": "kept"}
    assert load_state(layout).watermark("physics:hep-th") == report.newest_update_date
    assert load_state(layout).watermark("all") is None


def test_rows_with_a_newer_datestamp_already_stored_are_not_overwritten(tmp_path: Path, snap: Snapshot) -> None:
    layout = Layout(tmp_path / "data")
    upsert(layout, pl.concat([
        oai_row("0704.0001", "Newer from OAI", date(2026, 1, 1)),  # newer than the snapshot's 2007-04-01
        oai_row("0802.0002", "Older from OAI", date(2007, 1, 1)),  # older: the snapshot row replaces it
        oai_row("0704.5555", "Only in OAI", date(2026, 1, 1)),  # not in the snapshot: untouched
    ]))  # fmt: skip
    report = load(layout, snap.path)
    assert (row(layout, "0704.0001")["title"], row(layout, "0704.0001")["source"]) == ("Newer from OAI", "oai")
    assert row(layout, "0802.0002")["source"] == "snapshot"
    assert row(layout, "0704.5555")["title"] == "Only in OAI"
    assert (report.superseded, report.updated, report.new) == (1, 1, len(snap.records) - 2)
    assert store(layout).height == len(snap.records) + 1


@pytest.mark.parametrize("kind", ["gz", "zst", "zip"])
def test_compressed_snapshots_load_the_same_store(tmp_path: Path, snap: Snapshot, kind: str) -> None:
    plain, packed = Layout(tmp_path / "plain"), Layout(tmp_path / kind)
    load(plain, snap.path)
    report = load(packed, compress(snap.path, kind), chunk_lines=50)
    assert_frame_equal(store(packed), store(plain))
    assert list(report.bad_samples) == snap.bad


@pytest.mark.parametrize("kind", ["gz", "zst"])
def test_a_truncated_compressed_file_is_an_error_not_a_short_load(tmp_path: Path, snap: Snapshot, kind: str) -> None:
    packed = compress(snap.path, kind)
    packed.write_bytes(packed.read_bytes()[: packed.stat().st_size * 2 // 3])
    with pytest.raises(SnapshotError, match="corrupt or truncated"):
        load(Layout(tmp_path / "data"), packed)


class CancelAt:
    """A progress sink that sets the run's cancel event once ``task`` has advanced ``at`` units."""

    def __init__(self, cancel: threading.Event, task: str, at: float) -> None:
        self.cancel, self.name, self.at = cancel, task, at

    def task(self, description: str, *, total: float | None = None, unit: str = "") -> ProgressTask:
        sink = self

        class _Task:
            done = 0.0

            def advance(self, amount: float = 1) -> None:
                self.done += amount
                if description == sink.name and self.done >= sink.at:
                    sink.cancel.set()

            def update(self, *, total: float | None = None, description: str | None = None) -> None:
                return None

            def close(self) -> None:
                return None

        return _Task()


def cancelling(task: str, at: float) -> Runtime:
    event = threading.Event()
    return runtime(cancel=event, progress=CancelAt(event, task, at))


@pytest.mark.parametrize("kind", ["plain", "gz"])
def test_interrupted_while_reading_then_rerun_gives_the_uninterrupted_store(
    tmp_path: Path, snap: Snapshot, kind: str
) -> None:
    path = snap.path if kind == "plain" else compress(snap.path, kind)
    expected = Layout(tmp_path / "expected")
    load(expected, path, chunk_lines=23)
    layout = Layout(tmp_path / "data")
    with pytest.raises(Interrupted):
        load(layout, path, chunk_lines=23, runtime=cancelling("snapshot", path.stat().st_size // 2))
    assert layout.snapshot_checkpoint.exists() and not layout.metadata_years()  # nothing merged yet
    saved = json.loads(layout.snapshot_checkpoint.read_text())
    assert saved["phase"] == "spool" and 0 < saved["line_no"] < snap.lines

    report = load(layout, path, chunk_lines=23)
    assert report.resumed_from_line == saved["line_no"] and report.resumed_from_byte == saved["offset"]
    assert_frame_equal(store(layout), store(expected))
    assert report.lines == snap.lines and list(report.bad_samples) == snap.bad  # counts span both runs
    assert report.new == len(snap.records)
    assert not layout.snapshot_checkpoint.exists() and not layout.snapshot_spool_dir.exists()
    assert load_state(layout).watermark("all") == snap.newest


def test_interrupted_while_merging_then_rerun_merges_only_the_rest(tmp_path: Path, snap: Snapshot) -> None:
    expected = Layout(tmp_path / "expected")
    load(expected, snap.path)
    layout = Layout(tmp_path / "data")
    with pytest.raises(Interrupted):
        load(layout, snap.path, runtime=cancelling("snapshot merge", 3))
    saved = json.loads(layout.snapshot_checkpoint.read_text())
    assert saved["phase"] == "merge" and len(saved["merged"]) == 3 == len(layout.metadata_years())
    assert load_state(layout).watermark("all") is None  # set only once everything is merged

    report = load(layout, snap.path)
    assert report.resumed_from_line == snap.lines
    assert_frame_equal(store(layout), store(expected))
    assert report.new == len(snap.records)  # years merged by the first run are counted from its checkpoint
    assert load_state(layout).watermark("all") == snap.newest


def test_a_different_file_starts_afresh_and_says_so(tmp_path: Path, snap: Snapshot) -> None:
    layout = Layout(tmp_path / "data")
    with pytest.raises(Interrupted):
        load(layout, snap.path, chunk_lines=20, runtime=cancelling("snapshot", 1))
    other = tmp_path / "other.json"
    other.write_text(json.dumps(kaggle_record("2401.00001", date(2024, 1, 3))) + "\n")
    report = load(layout, other)
    assert report.notes == (f"the unfinished load was of another file ({snap.path}); started afresh",)
    assert store(layout)["id"].to_list() == ["2401.00001"]


def test_changed_sets_or_categories_start_afresh(tmp_path: Path, snap: Snapshot) -> None:
    layout = Layout(tmp_path / "data")
    with pytest.raises(Interrupted):
        load(layout, snap.path, chunk_lines=20, runtime=cancelling("snapshot", snap.path.stat().st_size // 2))
    config = IngestConfig(categories=("hep-th",))
    report = load(layout, snap.path, config)
    assert report.notes == ("the unfinished load used other ingest.sets/categories; started afresh",)
    assert report.resumed_from_line is None
    assert set(store(layout)["primary_category"].unique()) == {"hep-th"}
    assert report.kept + report.filtered == report.records == 285


def test_dry_run_writes_nothing_and_reports_what_would_change(tmp_path: Path, snap: Snapshot) -> None:
    layout = Layout(tmp_path / "data")
    report = load(layout, snap.path, dry_run=True)
    assert not (tmp_path / "data").exists()
    assert (report.new, report.bad, report.watermark_actions) == (len(snap.records), len(snap.bad), {"all": "set"})
    assert "would be set" in "\n".join(report.summary())


def test_missing_or_unreadable_path_is_a_snapshot_error(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="no such file"):
        load(Layout(tmp_path / "data"), tmp_path / "nope.json")
    with pytest.raises(SnapshotError, match="not a regular file"):
        load(Layout(tmp_path / "data"), tmp_path)


def test_cli_loads_through_the_library(tmp_path: Path, snap: Snapshot) -> None:
    data = tmp_path / "data"
    result = CliRunner().invoke(cli, ["--data-dir", str(data), "ingest", "--snapshot", str(snap.path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["new"], report["bad"], report["watermarks"]["all"]["action"]) == (
        len(snap.records),
        len(snap.bad),
        "set",
    )
    assert report["bad_samples"][0] == {"line": snap.bad[0][0], "reason": "invalid JSON"}
    assert store(Layout(data))["id"].to_list() == sorted(snap.records)

    human = CliRunner().invoke(cli, ["--data-dir", str(data), "ingest", "--snapshot", str(snap.path)])
    assert human.exit_code == 0
    assert f"0 new, 0 updated, {len(snap.records)} unchanged" in human.stdout
    assert f"watermark [all]: kept at {snap.newest}" in human.stdout


def test_cli_bad_path_is_one_line_and_non_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--data-dir", str(tmp_path / "data"), "ingest", "--snapshot", str(tmp_path / "missing.json")])
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {tmp_path / 'missing.json'}: no such file"]
