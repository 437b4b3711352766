"""autopatch: embed every paper that lacks a valid, current vector — newest years first, one durable part file
per chunk, compacted per year. A kill loses at most the chunks in flight (the one being embedded and those
waiting for the writer thread); a cancel or a dead engine, nothing."""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from papersys.config import EmbeddingConfig, ModelConfig
from papersys.embed.coverage import YearPlan, coverage_by_year, model_store, plan_year, record_coverage, signature
from papersys.embed.engines import Engine, Vectors, check_vectors, open_engine
from papersys.embed.executors import EngineFactory, ExecContext, Executor, open_executor
from papersys.embed.executors.raydata import RayRun, preflight
from papersys.embed.gaps import Coverage
from papersys.embed.manifest import ManifestAction, prepare_manifest
from papersys.embed.writer import OrderedWriter
from papersys.errors import EngineError
from papersys.faults import crash_point
from papersys.report import Report
from papersys.runtime import NullProgress, ProgressTask, Runtime
from papersys.store.embeddings import EmbeddingStore
from papersys.store.layout import Layout
from papersys.store.verify import verify_metadata_store

__all__ = ["AutopatchReport", "EngineFactory", "ModelPatch", "YearPatch", "run_autopatch"]
# Mid-year compaction once pending rows reach max(this, rows in the year file): above any arXiv year so far
# (≈ 300 k), so a year's first index is written as parts and compacted once, at its end (each compaction
# reads and rewrites every vector of the year); a reader merges at most this / chunk_size parts meanwhile.
COMPACT_MIN_ROWS = 524_288
# At the end of a run a year's parts stay pending (every read merges them) unless they hold an eighth of its
# year file or number more than MAX_PARTS: a daily backlog of a few papers per year would otherwise rewrite
# every touched year file, vectors and all, every day.
MAX_PARTS = 16
# The next year with gaps is planned in the background once fewer than this many of the queued gaps are left
# beyond the chunk being cut: reading, rendering and hashing a year (≈ 5 µs a paper) then overlaps the
# engine's last chunks of the year before, instead of stalling a GPU between years.
PREFETCH_ROWS = 32_768


def default_engine_factory(model: ModelConfig, log_path: Path) -> Engine:
    return open_engine(model, log_path=log_path)


@dataclass(frozen=True)
class YearPatch:
    year: int
    gaps: Coverage  # the year's counts before this run
    embedded: int = 0
    pruned: int = 0


@dataclass(frozen=True)
class ModelPatch:
    alias: str
    manifest: ManifestAction
    backlog: Coverage  # totals before this run
    years: tuple[YearPatch, ...] = ()
    seconds: float = 0.0
    load_seconds: float = 0.0  # of ``seconds``: waiting for the engine to start (its load overlaps planning)
    dry_run: bool = False

    @property
    def embedded(self) -> int:
        return sum(y.embedded for y in self.years)

    @property
    def pruned(self) -> int:
        return sum(y.pruned for y in self.years)

    @property
    def remaining(self) -> int:
        return self.backlog.gaps - self.embedded

    @property
    def rate(self) -> float | None:
        """Papers per second of the run, less the time it waited for the engine to start."""
        busy = self.seconds - self.load_seconds
        return self.embedded / busy if self.embedded and busy > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.alias,
            "manifest": self.manifest,
            "dry_run": self.dry_run,
            "backlog": self.backlog.to_dict(),
            "embedded": self.embedded,
            "pruned": self.pruned,
            "remaining": self.remaining,
            "seconds": round(self.seconds, 3),
            "load_seconds": round(self.load_seconds, 3),
            "papers_per_s": round(self.rate, 2) if self.rate else None,
            "years": {
                str(y.year): {"embedded": y.embedded, "pruned": y.pruned, **y.gaps.to_dict()} for y in self.years
            },
        }

    def summary_line(self) -> str:
        b = self.backlog
        classes = f"missing {b.missing:,}, stale {b.stale:,}, invalid {b.invalid:,}"
        note = {"created": "; new manifest", "reembed": "; manifest changed: re-embedding every paper"}.get(
            self.manifest, ""
        )
        if self.dry_run:
            return (
                f"{self.alias}: would embed {self.embedded:,} of {b.gaps:,} papers needing it ({classes}), "
                f"would prune {self.pruned:,} orphans{note}"
            )
        rate = f" ({self.rate:,.1f} papers/s; waited {self.load_seconds:,.1f}s for the model)" if self.rate else ""
        return (
            f"{self.alias}: embedded {self.embedded:,} papers in {self.seconds:,.1f}s{rate}, "
            f"{self.remaining:,} left, pruned {self.pruned:,} orphans{note}"
        )


@dataclass(frozen=True)
class AutopatchReport:
    models: tuple[ModelPatch, ...] = field(default_factory=tuple)
    dry_run: bool = False
    index: Report | None = None  # what updating the models' search indexes did afterwards (the service's)

    @property
    def embedded(self) -> int:
        return sum(m.embedded for m in self.models)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "embedded": self.embedded,
            "models": [m.to_dict() for m in self.models],
            "index": self.index.to_dict() if self.index else None,
        }

    def counts(self) -> dict[str, int]:
        """The figures recorded in the job history: totals, then embedded per model."""
        counts = {
            "embedded": self.embedded,
            "pruned": sum(m.pruned for m in self.models),
            "remaining": sum(m.remaining for m in self.models),
        }
        counts.update({f"embedded.{m.alias}": m.embedded for m in self.models})
        return counts

    def summary(self) -> list[str]:
        if not self.models:
            return ["no enabled embedding model"]
        return [m.summary_line() for m in self.models] + (self.index.summary() if self.index else [])


def run_autopatch(
    layout: Layout,
    models: Sequence[ModelConfig],
    runtime: Runtime,
    *,
    limit: int | None = None,
    dry_run: bool = False,
    reembed: bool = False,
    engine_factory: EngineFactory = default_engine_factory,
    embedding: EmbeddingConfig | None = None,
) -> AutopatchReport:
    """Patch each model in turn; ``limit`` caps the papers embedded per model. ``embedding`` picks the
    executor (default: local, with ``engine_factory``'s engines)."""
    embedding = embedding or EmbeddingConfig()
    if models:
        verify_metadata_store(layout, deletions=False)  # before a manifest is written or a model loaded
        if embedding.uses_ray(models) and not dry_run:
            preflight(embedding)  # Ray importable, its address answering: else an error, the store untouched
    ray = RayRun(embedding)  # one Ray for the run's Ray models, started at the first chunk that needs it
    try:
        patches = [
            _Patcher(layout, model, runtime, engine_factory, embedding, ray=ray).run(
                limit=limit, dry_run=dry_run, reembed=reembed
            )
            for model in models
        ]
    finally:
        ray.close()
    return AutopatchReport(tuple(patches), dry_run)


class _Backlog:
    """The gaps still to embed, queued across years in order (newest first): chunks are cut from its front.

    A daily harvest leaves a few papers in each of many years; cutting chunks across years hands the engine
    full, length-sorted batches instead of one small partial chunk per year."""

    def __init__(self) -> None:
        self.frames: deque[pl.DataFrame] = deque()
        self.rows = 0

    def put(self, frame: pl.DataFrame) -> None:
        if frame.height:
            self.frames.append(frame)
            self.rows += frame.height

    def take(self, count: int) -> pl.DataFrame:
        """The first ``count`` rows (or all that are left); slices share memory with the queued frames."""
        taken: list[pl.DataFrame] = []
        need = count
        while need and self.frames:
            frame = self.frames.popleft()
            if frame.height > need:
                self.frames.appendleft(frame.slice(need))
                frame = frame.head(need)
            taken.append(frame)
            need -= frame.height
        chunk = pl.concat(taken, how="vertical") if len(taken) > 1 else taken[0]
        self.rows -= chunk.height
        return chunk


@dataclass
class _OpenYear:
    """A year whose gaps are queued: what is left to embed, and what has been written since its plan.

    Holds the plan's figures, not the plan: a thin backlog keeps many years open at once."""

    year: int
    coverage: Coverage  # before this run
    metadata_stat: list[int] | None  # taken before the plan read the metadata
    keep: pl.Series | None  # the year's ids when it has orphans to prune, else None
    queued: int  # gaps of the year not yet written
    stored_rows: int  # rows in the year file as of the last compaction (or the plan)
    has_parts: bool = False  # parts left by an earlier run
    pending: int = 0  # rows written as parts since then
    embedded: dict[str, int] = field(default_factory=dict)  # by gap status
    pruned: int = 0

    @classmethod
    def of(cls, plan: YearPlan, queued: int, *, has_parts: bool) -> _OpenYear:
        cov = plan.coverage
        return cls(
            year=plan.year,
            coverage=cov,
            metadata_stat=plan.metadata_stat,
            keep=plan.ids if plan.has_metadata and plan.orphans else None,
            queued=queued,
            stored_rows=cov.papers - cov.missing + plan.orphans,
            has_parts=has_parts,
        )

    def compact(self, store: EmbeddingStore) -> None:
        done = store.compact(self.year, keep_ids=self.keep)
        self.pruned += done.pruned
        self.stored_rows, self.pending, self.has_parts = done.rows, 0, False


class _Patcher:
    """One model's run: owns its executor (opened at the first gap, closed at the end) and its writer thread
    (every store write after the plan: parts, compaction, coverage records)."""

    store: EmbeddingStore  # set by run() once the manifest is settled (its valid_since decides staleness)

    def __init__(
        self,
        layout: Layout,
        model: ModelConfig,
        runtime: Runtime,
        factory: EngineFactory,
        embedding: EmbeddingConfig,
        *,
        ray: RayRun,
    ) -> None:
        self.layout, self.model, self.runtime, self.factory = layout, model, runtime, factory
        self.embedding, self.ray = embedding, ray  # ray: the run's, shared by its Ray models
        self.executor: Executor | None = None
        self.writer = OrderedWriter(model.alias)
        self.loading: Future[Engine] | None = None  # the local engine, loading in the background
        self.budget = 0  # the most papers this run embeds (set by run())
        self.task: ProgressTask = NullProgress().task("")
        self.backlog = _Backlog()
        self.open: dict[int, _OpenYear] = {}  # years with queued gaps, in queue order
        self.done: dict[int, YearPatch] = {}
        self.plans: dict[int, YearPlan] = {}  # made while counting, not to be made twice
        self.with_gaps: list[int] = []  # years with gaps, newest first (set by run())
        self.planner: ThreadPoolExecutor | None = None  # plans the next year while this one is embedded
        self.prefetched: dict[int, Future[YearPlan]] = {}

    def run(self, *, limit: int | None, dry_run: bool, reembed: bool) -> ModelPatch:
        model, layout, runtime = self.model, self.layout, self.runtime
        start = runtime.monotonic()
        manifest, action = prepare_manifest(layout, model, reembed=reembed, dry_run=dry_run, now=runtime.clock())
        store = self.store = model_store(layout, model, manifest)
        if not dry_run:
            crash_point("embed.manifest_ready")  # the manifest is written, nothing else yet
            store.sweep()
        # the local engine loads in the background while years are planned; Ray actors load their own
        loads = not dry_run and limit != 0 and self.embedding.executor_of(model) == "local"
        counts = coverage_by_year(
            layout,
            model,
            manifest,
            persist=not dry_run,
            plans=None if dry_run else self.plans,
            on_gaps=self._start_engine if loads else None,
        )
        if not dry_run:
            crash_point("embed.coverage_cached")
        backlog = sum(counts.values(), Coverage())
        budget = backlog.gaps if limit is None else min(limit, backlog.gaps)
        runtime.observer.backlog(model.alias, backlog.gaps)
        self.task = runtime.progress.task(f"embed {model.alias}", total=budget, unit="papers")
        self.budget = budget
        self.with_gaps = [year for year, cov in counts.items() if cov.gaps]
        try:
            for year, cov in counts.items():  # newest first
                budget -= self._visit(year, cov, budget, dry_run=dry_run)
            while self.backlog.rows:
                self._embed_chunk(self.backlog.take(model.chunk_size))
            if self.executor is not None:
                self.executor.flush(self._write_later)
            self.writer.submit(self._close_finished)
            self.writer.drain()
        finally:
            self.task.close()
            self._close()
        elapsed = runtime.monotonic() - start
        years = tuple(self.done[year] for year in counts)
        load_seconds = self.executor.load_seconds if self.executor is not None else 0.0
        result = ModelPatch(model.alias, action, backlog, years, elapsed, load_seconds, dry_run)
        runtime.observer.backlog(model.alias, result.remaining)
        return result

    def _visit(self, year: int, cov: Coverage, budget: int, *, dry_run: bool) -> int:
        """Plan one year and queue its gaps (embedding every full chunk); returns how many were queued."""
        prunable = cov.orphans if self.layout.metadata_file(year).exists() else 0
        if dry_run:
            todo = min(cov.gaps, budget)
            self.done[year] = YearPatch(year, cov, embedded=todo, pruned=prunable)
            return todo
        has_parts = bool(self.store.pending_parts(year))
        if (cov.gaps == 0 or budget == 0) and not prunable and not has_parts:
            self.done[year] = YearPatch(year, cov)
            return 0
        plan = self._plan(year)
        gaps = plan.gaps.sort("id", descending=True).head(budget)  # newest papers of the year first
        self.open[year] = _OpenYear.of(plan, gaps.height, has_parts=has_parts)
        self.backlog.put(gaps.with_columns(pl.lit(year, dtype=pl.Int32).alias("year")))
        more = budget > gaps.height  # papers left to embed after this year's
        while self.backlog.rows >= self.model.chunk_size:
            if more and self.backlog.rows < self.model.chunk_size + PREFETCH_ROWS:
                self._prefetch(after=year)
            self._embed_chunk(self.backlog.take(self.model.chunk_size))
        self.writer.submit(self._close_finished)
        return gaps.height

    def _plan(self, year: int) -> YearPlan:
        """The year's plan: made in the background (``_prefetch``), or by the count, or now."""
        future = self.prefetched.pop(year, None)
        if future is not None:
            return future.result()
        return self.plans.pop(year, None) or plan_year(self.store, self.model, year)

    def _prefetch(self, *, after: int) -> None:
        """Start planning the next year with gaps (older than ``after``) in the background, unless it is
        planned or being planned already."""
        upcoming = next((y for y in self.with_gaps if y < after), None)
        if upcoming is None or upcoming in self.prefetched or upcoming in self.plans:
            return
        if self.planner is None:
            self.planner = ThreadPoolExecutor(1, thread_name_prefix=f"plan-{self.model.alias}")
        self.prefetched[upcoming] = self.planner.submit(plan_year, self.store, self.model, upcoming)

    def _close_finished(self) -> None:
        """Compact and record every open year whose gaps are all written (in the writer thread, while the run's
        thread may open more years: hence the snapshot of ``open``)."""
        for year in [y for y, state in list(self.open.items()) if state.queued == 0]:
            self.done[year] = self._close_year(self.open.pop(year))

    def _close_year(self, state: _OpenYear) -> YearPatch:
        if self._due_for_compaction(state):
            state.compact(self.store)
        cov, embedded = state.coverage, state.embedded
        after = Coverage(
            papers=cov.papers,
            valid=cov.valid + sum(embedded.values()),
            missing=cov.missing - embedded.get("missing", 0),
            invalid=cov.invalid - embedded.get("invalid", 0),
            stale=cov.stale - embedded.get("stale", 0),
            orphans=cov.orphans - state.pruned,
        )
        sig = signature(self.store, self.model, state.year, state.metadata_stat)
        record_coverage(self.store, {state.year: (sig, after)})
        crash_point("embed.year_recorded")
        return YearPatch(state.year, cov, embedded=sum(embedded.values()), pruned=state.pruned)

    def _due_for_compaction(self, state: _OpenYear) -> bool:
        if state.keep is not None:
            return True  # orphans to prune
        parts = len(self.store.pending_parts(state.year)) if state.pending or state.has_parts else 0
        if not parts:
            return False
        if not self.store.year_file(state.year).exists():
            return True  # a year's first vectors become its year file
        return parts > MAX_PARTS or state.pending * 8 >= state.stored_rows

    def _embed_chunk(self, chunk: pl.DataFrame) -> None:
        """Embed one chunk (longest texts first; it may span years); the executor hands its rows to ``_write``
        (one part per year they hold) now, or for the Ray executor once they come back."""
        chunk = chunk.sort(pl.col("text").str.len_chars(), descending=True, maintain_order=True)
        if self.executor is None:
            ctx = ExecContext(self.model, self.runtime, self.task, self._checked, self.store.worker_log)
            self.executor = open_executor(self.embedding, ctx, self._loaded_engine, self.budget, ray=self.ray)
        self.executor.embed(chunk, self._write_later)

    def _start_engine(self) -> None:
        """Start loading the engine in the background, once gaps are known to exist: its imports and model
        load (1 s for a static model, 10-20 s for torch and a transformer) overlap with planning the years."""
        loader = ThreadPoolExecutor(1, thread_name_prefix=f"load-{self.model.alias}")
        self.loading = loader.submit(self.factory, self.model, self.store.worker_log)
        loader.shutdown(wait=False)  # the thread ends with the load

    def _loaded_engine(self, model: ModelConfig, log_path: Path) -> Engine:
        """The local executor's engine factory: the engine loading in the background, else a fresh one (the
        executor counts the wait as ``load_seconds``)."""
        loading, self.loading = self.loading, None
        return loading.result() if loading is not None else self.factory(model, log_path)

    def _close(self) -> None:
        try:
            self.writer.close()  # every chunk handed over is written (a cancel's too), or its error raised
        finally:
            self._close_planner()
            self._close_engine()

    def _close_planner(self) -> None:
        """Stop planning ahead: a plan not started is cancelled, one running is waited for (it may be writing
        the year's text-hash cache), its result or error dropped (the run ended before it was needed)."""
        if self.planner is not None:
            self.planner.shutdown(wait=True, cancel_futures=True)
            self.planner = None
        self.prefetched.clear()

    def _close_engine(self) -> None:
        if self.executor is not None:
            self.executor.close()
        if self.loading is not None:  # loaded, never taken: an error or a cancel came before the first batch
            with contextlib.suppress(Exception):
                self.loading.result().close()
            self.loading = None

    def _checked(self, vectors: Vectors, count: int) -> Vectors:
        checked = check_vectors(self.model.alias, vectors, count, self.model.dim)
        if self.model.dtype == "float16" and not np.isfinite(checked.astype(np.float16)).all():
            raise EngineError(self.model.alias, "vectors overflow float16 storage; use dtype = 'float32'")
        return checked

    def _write_later(self, rows: pl.DataFrame, vectors: Vectors) -> None:
        """The executors' ``write``: queued for the writer thread, which runs ``_write``."""
        self.writer.submit(self._write, rows, vectors, rows=rows.height)

    def _write(self, rows: pl.DataFrame, vectors: Vectors) -> None:
        """One part per year of ``rows``; a year's parts are compacted once they outgrow its file."""
        if rows.height == 0:
            return
        frame = rows.select("id", "text_hash", "status", "year").with_columns(
            pl.Series("vector", vectors), pl.lit(self.runtime.clock()).alias("embedded_at")
        )
        finished = False
        for (year,), part in frame.group_by("year", maintain_order=True):
            state = self.open[int(year)]
            self.store.write_part(state.year, part)
            crash_point("embed.part_written")  # a durable chunk, not yet compacted into the year file
            for status, count in part.group_by("status").len().iter_rows():
                state.embedded[str(status)] = state.embedded.get(str(status), 0) + int(count)
            state.queued -= part.height
            state.pending += part.height
            if state.queued and state.pending >= max(COMPACT_MIN_ROWS, state.stored_rows):
                state.compact(self.store)  # mid-year: bounds the parts a reader merges
            elif not state.queued:
                finished = True
        if finished:  # close a year as soon as its last part is written, while the engine starts the next
            self._close_finished()
