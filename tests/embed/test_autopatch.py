"""autopatch end to end on real Parquet with the real MiniLM: first run, no-op rerun, stale, invalid, orphans,
limit, dry run, manifest refusal and re-embed, cancellation and engine failure mid-run, coverage cache."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from support.builders import frame, row
from support.embedding import PAPERS, CountingEngine, HashEngine, add_papers, hash_vector, make_config

from papersys import service
from papersys.config import Config, ModelConfig
from papersys.embed.autopatch import MAX_PARTS, EngineFactory
from papersys.embed.coverage import coverage_by_year
from papersys.embed.engines.base import Engine
from papersys.embed.gaps import Coverage
from papersys.embed.text import text_hash
from papersys.errors import EngineError, Interrupted, ManifestMismatchError
from papersys.runtime import NullObserver, ProgressTask, Runtime
from papersys.store import embeddings as store
from papersys.store.embeddings import EmbeddingStore
from papersys.store.layout import Layout
from papersys.store.metadata import upsert

TEXTS = {pid: f"{title}\n{abstract}" for pid, title, abstract in PAPERS}


def factory(engine: Engine, calls: list[str] | None = None) -> EngineFactory:
    def make(model: ModelConfig, log_path: Path) -> Engine:
        if calls is not None:
            calls.append(model.alias)
        return engine

    return make


def stored(config: Config, year: int, dim: int = 384) -> pl.DataFrame:
    return store.read_embeddings(Layout(config.data_dir), "minilm", year, dim=dim).sort("id")


@pytest.fixture
def config(tmp_path: Path) -> Config:
    config = make_config(tmp_path)
    add_papers(Layout(config.data_dir))
    return config


def test_first_run_embeds_every_paper_and_a_second_run_embeds_none(
    config: Config, counting: CountingEngine, minilm: Engine
) -> None:
    report = service.embed_autopatch(config, engine_factory=factory(counting))
    (patch,) = report.models
    assert patch.embedded == 6 and patch.remaining == 0 and patch.manifest == "created"
    assert patch.backlog == Coverage(papers=6, missing=6)
    assert [y.year for y in patch.years] == [2024, 2023, 1999]  # newest first
    layout = Layout(config.data_dir)
    assert layout.embedding_years("minilm") == [1999, 2023, 2024]
    assert store.pending_parts(layout, "minilm") == []
    rows = stored(config, 2024)
    assert rows["id"].to_list() == ["2401.00001", "2401.00002", "2401.00003"]
    assert rows["text_hash"].to_list() == [text_hash(TEXTS[i]) for i in rows["id"]]
    reference = minilm.embed([TEXTS[i] for i in rows["id"]])
    np.testing.assert_allclose(rows["vector"].to_numpy(), reference, atol=1e-5)
    assert counting.closed == 1

    calls: list[str] = []
    again = service.embed_autopatch(config, engine_factory=factory(counting, calls))
    assert again.embedded == 0 and calls == []  # nothing to do: the model is not even loaded
    assert again.models[0].summary_line().startswith("minilm: embedded 0 papers")


def test_a_title_edit_reembeds_exactly_that_paper(config: Config, counting: CountingEngine) -> None:
    service.embed_autopatch(config, engine_factory=factory(counting))
    counting.texts.clear()
    upsert(
        Layout(config.data_dir),
        frame(row("2312.00005", title="Superconductivity at the magic angle", datestamp=date(2024, 3, 1),
                  abstract=PAPERS[4][2])),
    )  # fmt: skip
    backlog = service.embed_backlog(config).models[0]
    assert backlog.total == Coverage(papers=6, valid=5, stale=1)
    report = service.embed_autopatch(config, engine_factory=factory(counting))
    assert counting.texts == [f"Superconductivity at the magic angle\n{PAPERS[4][2]}"]
    assert report.models[0].years[1].gaps.stale == 1
    assert stored(config, 2023).filter(pl.col("id") == "2312.00005")["text_hash"].item() == text_hash(counting.texts[0])


def test_nan_zero_and_wrong_length_rows_written_by_hand_are_repaired(config: Config, counting: CountingEngine) -> None:
    service.embed_autopatch(config, engine_factory=factory(counting))
    layout = Layout(config.data_dir)
    path = layout.embedding_file("minilm", 2024)
    good = pl.read_parquet(path)
    nan = np.full(384, 0.1, dtype=np.float32)
    nan[7] = np.nan
    vectors = [nan.tolist(), [0.0] * 384, [0.5] * 3]  # NaN, all-zero, wrong length: a legacy List column
    pl.DataFrame(
        {"id": good["id"], "text_hash": good["text_hash"], "vector": vectors, "embedded_at": good["embedded_at"]},
        schema_overrides={"vector": pl.List(pl.Float32)},
    ).write_parquet(path)
    assert service.embed_backlog(config).models[0].total.invalid == 3
    counting.texts.clear()
    report = service.embed_autopatch(config, engine_factory=factory(counting))
    assert report.embedded == 3 and sorted(counting.texts) == sorted(TEXTS[i] for i in good["id"])
    assert pl.read_parquet_schema(path)["vector"] == pl.Array(pl.Float32, 384)
    np.testing.assert_allclose(stored(config, 2024)["vector"].to_numpy(), good["vector"].to_numpy(), atol=1e-5)


def test_orphans_are_counted_never_covered_and_pruned(config: Config, counting: CountingEngine) -> None:
    service.embed_autopatch(config, engine_factory=factory(counting))
    layout = Layout(config.data_dir)
    orphan = stored(config, 2024).head(1).with_columns(id=pl.lit("2401.09999"))
    EmbeddingStore(layout, "minilm", 384).write_part(2024, orphan.drop("valid"))
    total = service.embed_backlog(config).models[0].total
    assert total == Coverage(papers=6, valid=6, orphans=1)
    report = service.embed_autopatch(config, engine_factory=factory(counting))
    assert report.models[0].pruned == 1 and report.embedded == 0
    assert "2401.09999" not in stored(config, 2024)["id"].to_list()
    assert store.pending_parts(layout, "minilm") == []


def test_dry_run_writes_nothing_and_limit_takes_the_newest_first(config: Config, counting: CountingEngine) -> None:
    dry = service.embed_autopatch(config, dry_run=True, limit=4, engine_factory=factory(counting))
    assert dry.models[0].embedded == 4 and counting.texts == []
    assert "would embed 4 of 6" in dry.summary()[0]
    assert not Layout(config.data_dir).embeddings_root.exists()
    assert not Layout(config.data_dir).coverage_cache("minilm").exists()  # not even the coverage cache
    report = service.embed_autopatch(config, limit=2, engine_factory=factory(counting))
    assert report.models[0].embedded == 2 and report.models[0].remaining == 4
    assert stored(config, 2024)["id"].to_list() == ["2401.00002", "2401.00003"]


def test_a_changed_template_is_refused_until_reembed(config: Config, counting: CountingEngine, tmp_path: Path) -> None:
    service.embed_autopatch(config, engine_factory=factory(counting))
    changed = make_config(tmp_path, template="{title}")
    with pytest.raises(ManifestMismatchError) as info:
        service.embed_autopatch(changed, engine_factory=factory(counting))
    message = str(info.value)
    assert "\n" not in message
    assert r"template: stored '{title}\n{abstract}' != configured '{title}'" in message and "--reembed" in message
    with pytest.raises(ManifestMismatchError):
        service.embed_backlog(changed)
    counting.texts.clear()
    report = service.embed_autopatch(changed, reembed=True, engine_factory=factory(counting))
    assert report.models[0].manifest == "reembed" and report.embedded == 6
    assert sorted(counting.texts) == sorted(title for _, title, _ in PAPERS)
    again = service.embed_autopatch(changed, reembed=True, engine_factory=factory(counting))
    assert again.embedded == 0 and again.models[0].manifest == "kept"  # the flag never discards finished work


def test_a_manifest_with_no_vectors_behind_it_is_simply_replaced(tmp_path: Path) -> None:
    empty = make_config(tmp_path, dim=8)
    assert service.embed_autopatch(empty, engine_factory=factory(HashEngine(8))).models[0].manifest == "created"
    changed = make_config(tmp_path, dim=8, template="{title}")
    assert service.embed_backlog(changed).models[0].total == Coverage()
    report = service.embed_autopatch(changed, engine_factory=factory(HashEngine(8)))
    assert report.models[0].manifest == "created"
    manifest = store.read_manifest(Layout(changed.data_dir), "minilm")
    assert manifest is not None and manifest.template == "{title}" and manifest.valid_since is None


class CancelAfter(NullObserver):
    """Sets the run's cancel event once ``n`` papers are embedded (what SIGTERM does in the daemon)."""

    def __init__(self, event: threading.Event, n: int) -> None:
        self.event, self.n, self.seen = event, n, 0

    def embedded(self, model: str, count: int, seconds: float) -> None:
        self.seen += count
        if self.seen >= self.n:
            self.event.set()


def test_reembed_to_another_dim_cancelled_midway_resumes_without_the_flag(
    config: Config, counting: CountingEngine, tmp_path: Path
) -> None:
    service.embed_autopatch(config, engine_factory=factory(counting))
    small = make_config(tmp_path, dim=8, batch_size=2)
    engine = HashEngine(8)
    cancel = threading.Event()
    runtime = Runtime(cancel=cancel, observer=CancelAfter(cancel, 2))
    with pytest.raises(Interrupted):
        service.embed_autopatch(small, reembed=True, runtime=runtime, engine_factory=factory(engine))
    # the finished batch was kept; the old 384-dim year file now reads as stale rows, not as an error
    assert service.embed_backlog(small).models[0].total == Coverage(papers=6, valid=2, invalid=4)
    report = service.embed_autopatch(small, engine_factory=factory(engine))
    assert report.embedded == 4 and len(engine.texts) == 6
    for year in (2024, 2023, 1999):
        rows = stored(small, year, dim=8)
        assert rows["valid"].all()
        np.testing.assert_allclose(rows["vector"].to_numpy(), [hash_vector(TEXTS[i], 8) for i in rows["id"]])


def test_an_engine_failure_keeps_every_batch_already_embedded(config: Config, tmp_path: Path) -> None:
    small = make_config(tmp_path, dim=8, batch_size=1, chunk_size=3)  # fails on the 3rd batch of the 1st chunk
    with pytest.raises(EngineError, match="exited with status 7"):
        service.embed_autopatch(small, engine_factory=factory(HashEngine(8, fail_after=2)))
    assert service.embed_backlog(small).models[0].total == Coverage(papers=6, valid=2, missing=4)
    engine = HashEngine(8)
    assert service.embed_autopatch(small, engine_factory=factory(engine)).embedded == 4
    assert len(engine.texts) == 4


@dataclass
class RecordingTask:
    total: float | None
    done: float = 0
    closed: bool = False

    def advance(self, amount: float = 1) -> None:
        self.done += amount

    def update(self, *, total: float | None = None, description: str | None = None) -> None:
        self.total = total

    def close(self) -> None:
        self.closed = True


@dataclass
class Recorder(NullObserver):
    tasks: dict[str, RecordingTask] = field(default_factory=dict)
    backlogs: list[int] = field(default_factory=list)
    embedded_counts: list[int] = field(default_factory=list)

    def task(self, description: str, *, total: float | None = None, unit: str = "") -> ProgressTask:
        self.tasks[f"{description} ({unit})"] = RecordingTask(total)
        return self.tasks[f"{description} ({unit})"]

    def embedded(self, model: str, count: int, seconds: float) -> None:
        self.embedded_counts.append(count)

    def backlog(self, model: str, count: int) -> None:
        self.backlogs.append(count)


def test_progress_and_metrics_hooks(tmp_path: Path) -> None:
    small = make_config(tmp_path, dim=8, batch_size=4)
    add_papers(Layout(small.data_dir))
    recorder = Recorder()
    service.embed_autopatch(
        small, runtime=Runtime(progress=recorder, observer=recorder), engine_factory=factory(HashEngine(8))
    )
    task = recorder.tasks["embed minilm (papers)"]
    assert (task.total, task.done, task.closed) == (6, 6, True)
    assert recorder.backlogs == [6, 0]
    assert recorder.embedded_counts == [4, 2]  # full batches cut across the three years, not one per year


def test_a_thin_backlog_is_embedded_in_full_batches_across_years_and_written_per_year(tmp_path: Path) -> None:
    """A daily harvest touches a few papers in many years: they share chunks and batches, each year still
    gets exactly its own rows (one part per year and chunk, compacted), and a mid-chunk year boundary is kept."""
    config = make_config(tmp_path, dim=8, batch_size=4, chunk_size=5)
    layout = Layout(config.data_dir)
    papers = [
        (f"{yy:02d}01.{n:05d}", f"Title {yy} {n}", "word " * (n + 3 * yy % 7)) for yy in range(10, 19) for n in (1, 2)
    ]
    upsert(layout, frame(*(row(pid, title=title, abstract=abstract) for pid, title, abstract in papers)))
    engine = HashEngine(8)
    recorder = Recorder()
    report = service.embed_autopatch(
        config, runtime=Runtime(progress=recorder, observer=recorder), engine_factory=factory(engine)
    )
    (patch,) = report.models
    assert patch.embedded == 18 and patch.remaining == 0
    assert [y.year for y in patch.years] == list(range(2018, 2009, -1))  # newest first
    assert all(y.embedded == 2 for y in patch.years)
    # 18 papers in chunks of 5 (4 chunks), batches of 4 inside each: 4+1, 4+1, 4+1, 3
    assert recorder.embedded_counts == [4, 1, 4, 1, 4, 1, 3]
    assert store.pending_parts(layout, "minilm") == []  # every year compacted
    for yy in range(10, 19):
        rows = store.read_embeddings(layout, "minilm", 2000 + yy, dim=8).sort("id")
        assert rows["id"].to_list() == [f"{yy:02d}01.00001", f"{yy:02d}01.00002"]
        expected = {pid: f"{title}\n{abstract}" for pid, title, abstract in papers}
        vectors = np.stack([hash_vector(expected[pid], 8) for pid in rows["id"]])
        np.testing.assert_allclose(rows["vector"].to_numpy(), vectors, atol=1e-6)
    assert service.embed_backlog(config).models[0].total.gaps == 0


def test_coverage_cache_recomputes_only_changed_years(config: Config) -> None:
    layout = Layout(config.data_dir)
    model = config.model("minilm")
    cache = layout.coverage_cache("minilm")
    assert coverage_by_year(layout, model, persist=False)[2023] == Coverage(papers=2, missing=2)
    assert not cache.exists()  # what `status` uses: it writes nothing
    first = coverage_by_year(layout, model)
    assert first[2023] == Coverage(papers=2, missing=2) and cache.exists()
    # poison the cached counts of 2023 (signature kept): served from the cache while 2023's files are unchanged
    poisoned = cache.read_text().replace('"missing": 2', '"missing": 99')
    cache.write_text(poisoned)
    upsert(layout, frame(row("2401.00007", title="New", abstract="Paper.")))
    second = coverage_by_year(layout, model)
    assert second[2023].missing == 99  # not recomputed
    assert second[2024] == Coverage(papers=4, missing=4)  # recomputed: its metadata changed


def test_small_additions_to_a_year_stay_parts_until_they_pile_up(tmp_path: Path) -> None:
    """A daily run adding a paper to a big year must not rewrite the year file's vectors: the new vectors stay
    a pending part (reads merge it) until MAX_PARTS of them pile up, then the year is compacted."""
    config = make_config(tmp_path, dim=8, batch_size=4)
    layout = Layout(config.data_dir)
    engine = HashEngine(8)
    upsert(layout, frame(*(row(f"2401.{n:05d}", title=f"Paper {n}") for n in range(1, 41))))
    service.embed_autopatch(config, engine_factory=factory(engine))
    year_file = layout.embedding_file("minilm", 2024)
    first = year_file.stat().st_ino
    for n in range(41, 42 + MAX_PARTS):
        upsert(layout, frame(row(f"2401.{n:05d}", title=f"Paper {n}")))
        assert service.embed_autopatch(config, engine_factory=factory(engine)).embedded == 1
        rows = stored(config, 2024, dim=8)
        assert rows.height == n and rows["valid"].all()
        parts = store.pending_parts(layout, "minilm", 2024)
        if n - 40 <= MAX_PARTS:
            assert len(parts) == n - 40 and year_file.stat().st_ino == first  # the year file untouched
    assert parts == [] and year_file.stat().st_ino != first  # the seventeenth part compacted them all
    assert pl.read_parquet(year_file)["id"].to_list() == [f"2401.{n:05d}" for n in range(1, 42 + MAX_PARTS)]
    assert service.embed_backlog(config).models[0].total.gaps == 0


def test_the_next_year_is_planned_in_the_background_and_the_store_is_the_same(
    tmp_path: Path, counting: CountingEngine, minilm: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With chunks of 2, the next year's plan starts on the planner thread while this year's last chunks are
    embedded; every year is planned exactly once and the store holds every paper once, with its real vector."""
    from papersys.embed import autopatch

    planned: list[tuple[int, str]] = []
    real_plan = autopatch.plan_year

    def recording(store: EmbeddingStore, model: ModelConfig, year: int) -> object:
        planned.append((year, threading.current_thread().name))
        return real_plan(store, model, year)

    monkeypatch.setattr(autopatch, "plan_year", recording)
    config = make_config(tmp_path, chunk_size=2, batch_size=2)
    add_papers(Layout(config.data_dir))
    report = service.embed_autopatch(config, engine_factory=factory(counting))
    assert report.embedded == 6
    assert sorted(year for year, _ in planned) == [1999, 2023, 2024]  # once each
    threads = dict(planned)
    assert not threads[2024].startswith("plan-")  # the first year: nothing to overlap
    assert threads[2023].startswith("plan-minilm")  # planned while 2024's chunks were embedded
    layout = Layout(config.data_dir)
    for year in (1999, 2023, 2024):
        rows = stored(config, year)
        assert rows["id"].is_unique().all() and rows["valid"].all()
        reference = minilm.embed([TEXTS[i] for i in rows["id"]])
        np.testing.assert_allclose(rows["vector"].to_numpy(), reference, atol=1e-5)
    assert sum(stored(config, y).height for y in (1999, 2023, 2024)) == 6
    assert store.pending_parts(layout, "minilm") == []
