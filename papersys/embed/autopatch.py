"""autopatch: embed every paper that lacks a valid, current vector — newest years first, one durable part file
per chunk, compacted per year. A kill loses at most the chunk in flight; a cancel or a dead engine, nothing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from papersys.config import ModelConfig
from papersys.embed.coverage import YearPlan, coverage_by_year, model_store, plan_year, record_coverage, signature
from papersys.embed.engines import Engine, Vectors, check_vectors, open_engine
from papersys.embed.gaps import Coverage
from papersys.embed.manifest import ManifestAction, prepare_manifest
from papersys.errors import EngineError, Interrupted
from papersys.faults import crash_point
from papersys.report import Report
from papersys.runtime import NullProgress, ProgressTask, Runtime
from papersys.store.embeddings import EmbeddingStore
from papersys.store.layout import Layout
from papersys.store.verify import verify_metadata_store

EngineFactory = Callable[[ModelConfig, Path], Engine]
COMPACT_MIN_ROWS = 65_536  # mid-year compaction once pending rows reach max(this, rows in the year file)


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
    load_seconds: float = 0.0  # of ``seconds``: starting the engine (imports, model load)
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
        """Papers per second of work after the engine started."""
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
        rate = f" ({self.rate:,.1f} papers/s after {self.load_seconds:,.1f}s model load)" if self.rate else ""
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
) -> AutopatchReport:
    """Patch each model in turn; ``limit`` caps the papers embedded per model."""
    if models:
        verify_metadata_store(layout, deletions=False)  # before a manifest is written or a model loaded
    patches = [
        _Patcher(layout, model, runtime, engine_factory).run(limit=limit, dry_run=dry_run, reembed=reembed)
        for model in models
    ]
    return AutopatchReport(tuple(patches), dry_run)


class _Patcher:
    """One model's run: owns its engine (opened at the first gap, closed at the end)."""

    store: EmbeddingStore  # set by run() once the manifest is settled (its valid_since decides staleness)

    def __init__(self, layout: Layout, model: ModelConfig, runtime: Runtime, factory: EngineFactory) -> None:
        self.layout, self.model, self.runtime, self.factory = layout, model, runtime, factory
        self.engine: Engine | None = None
        self.load_seconds = 0.0
        self.task: ProgressTask = NullProgress().task("")

    def run(self, *, limit: int | None, dry_run: bool, reembed: bool) -> ModelPatch:
        model, layout, runtime = self.model, self.layout, self.runtime
        start = runtime.monotonic()
        manifest, action = prepare_manifest(layout, model, reembed=reembed, dry_run=dry_run, now=runtime.clock())
        store = self.store = model_store(layout, model, manifest)
        if not dry_run:
            crash_point("embed.manifest_ready")  # the manifest is written, nothing else yet
            store.sweep()
        counts = coverage_by_year(layout, model, manifest, persist=not dry_run)  # a dry run writes nothing
        if not dry_run:
            crash_point("embed.coverage_cached")
        backlog = sum(counts.values(), Coverage())
        budget = backlog.gaps if limit is None else min(limit, backlog.gaps)
        runtime.observer.backlog(model.alias, backlog.gaps)
        years: list[YearPatch] = []
        task = self.task = runtime.progress.task(f"embed {model.alias}", total=budget, unit="papers")
        try:
            for year, cov in counts.items():  # newest first
                prunable = cov.orphans if layout.metadata_file(year).exists() else 0
                if dry_run:
                    todo = min(cov.gaps, budget)
                    budget -= todo
                    years.append(YearPatch(year, cov, embedded=todo, pruned=prunable))
                    continue
                has_parts = bool(store.pending_parts(year))
                if (cov.gaps == 0 or budget == 0) and not prunable and not has_parts:
                    years.append(YearPatch(year, cov))
                    continue
                done = self._patch_year(plan_year(store, model, year), budget)
                budget -= done.embedded
                years.append(done)
        finally:
            task.close()
            if self.engine is not None:
                self.engine.close()
        elapsed = runtime.monotonic() - start
        result = ModelPatch(model.alias, action, backlog, tuple(years), elapsed, self.load_seconds, dry_run)
        runtime.observer.backlog(model.alias, result.remaining)
        return result

    def _patch_year(self, plan: YearPlan, budget: int) -> YearPatch:
        model, store = self.model, self.store
        gaps = plan.gaps.sort("id", descending=True).head(budget)  # newest papers of the year first
        keep = plan.ids if plan.has_metadata else None
        stored_rows = plan.coverage.papers - plan.coverage.missing + plan.orphans
        pending = 0
        embedded: dict[str, int] = {}
        pruned = 0
        for offset in range(0, gaps.height, model.chunk_size):
            chunk = gaps.slice(offset, model.chunk_size)
            written = self._embed_chunk(plan.year, chunk)
            for status, count in written.group_by("status").len().iter_rows():
                embedded[str(status)] = embedded.get(str(status), 0) + int(count)
            pending += written.height
            if pending >= max(COMPACT_MIN_ROWS, stored_rows) and offset + model.chunk_size < gaps.height:
                done = store.compact(plan.year, keep_ids=keep)
                pruned += done.pruned
                stored_rows, pending = done.rows, 0
        if pending or store.pending_parts(plan.year) or (keep is not None and plan.orphans):
            pruned += store.compact(plan.year, keep_ids=keep).pruned
        cov = plan.coverage
        after = Coverage(
            papers=cov.papers,
            valid=cov.valid + sum(embedded.values()),
            missing=cov.missing - embedded.get("missing", 0),
            invalid=cov.invalid - embedded.get("invalid", 0),
            stale=cov.stale - embedded.get("stale", 0),
            orphans=cov.orphans - pruned,
        )
        sig = signature(store, model, plan.year, plan.metadata_stat)
        record_coverage(store, {plan.year: (sig, after)})
        crash_point("embed.year_recorded")
        return YearPatch(plan.year, cov, embedded=sum(embedded.values()), pruned=pruned)

    def _embed_chunk(self, year: int, chunk: pl.DataFrame) -> pl.DataFrame:
        """Embed one chunk (longest texts first) and write what got embedded as one part; returns those rows."""
        model, runtime = self.model, self.runtime
        chunk = chunk.sort(pl.col("text").str.len_chars(), descending=True, maintain_order=True)
        texts = chunk["text"].to_list()
        vectors = np.empty((len(texts), model.dim), dtype=np.float32)
        done = 0
        try:
            for start in range(0, len(texts), model.batch_size):
                runtime.check_cancel()
                if self.engine is None:
                    began = runtime.monotonic()
                    self.engine = self.factory(model, self.store.worker_log)
                    self.load_seconds = runtime.monotonic() - began
                batch = texts[start : start + model.batch_size]
                began = runtime.monotonic()
                vectors[start : start + len(batch)] = self._checked(self.engine.embed(batch), len(batch))
                done += len(batch)
                runtime.observer.embedded(model.alias, len(batch), runtime.monotonic() - began)
                self.task.advance(len(batch))
        except (Interrupted, EngineError):
            # a cancel or a dead worker keeps every finished batch of the chunk (a kill -9 loses the chunk)
            self._write(year, chunk.head(done), vectors[:done])
            raise
        return self._write(year, chunk, vectors)

    def _checked(self, vectors: Vectors, count: int) -> Vectors:
        checked = check_vectors(self.model.alias, vectors, count, self.model.dim)
        if self.model.dtype == "float16" and not np.isfinite(checked.astype(np.float16)).all():
            raise EngineError(self.model.alias, "vectors overflow float16 storage; use dtype = 'float32'")
        return checked

    def _write(self, year: int, rows: pl.DataFrame, vectors: Vectors) -> pl.DataFrame:
        if rows.height == 0:
            return rows
        frame = rows.select("id", "text_hash").with_columns(
            pl.Series("vector", vectors), pl.lit(self.runtime.clock()).alias("embedded_at")
        )
        self.store.write_part(year, frame)
        crash_point("embed.part_written")  # a durable chunk, not yet compacted into the year file
        return rows
