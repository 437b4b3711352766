"""The OAI-PMH harvest loop: windows → pages → spool → one merge per window → checkpoint."""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import polars as pl

from papersys.config import IngestConfig, is_set_spec
from papersys.errors import HarvestError, StorageError, UsageError
from papersys.faults import crash_point
from papersys.ingest.harvest_report import IngestReport, SetReport
from papersys.ingest.oai import BadResumptionToken, OAIClient
from papersys.ingest.parse import ParsedPage, parse_page_records
from papersys.ingest.prefetch import pipeline
from papersys.ingest.sets import category_names
from papersys.ingest.spool import Spool
from papersys.ingest.walker import PageStats
from papersys.ingest.windows import plan_windows, resolve_start
from papersys.runtime import Runtime
from papersys.store.layout import Layout
from papersys.store.metadata import YearChange
from papersys.store.state import Checkpoint, WindowInProgress, load_state, save_state, set_key
from papersys.store.verify import verify_metadata_store

__all__ = ["HarvestRequest", "IngestReport", "SetReport", "run_harvest"]

log = logging.getLogger(__name__)
SPOOL_BATCH = 25_000  # rows buffered in memory before they are written to the spool


@dataclass(frozen=True)
class HarvestRequest:
    start: date | None
    until: date | None
    sets: tuple[str | None, ...]
    dry_run: bool = False

    @classmethod
    def build(
        cls,
        cfg: IngestConfig,
        *,
        start: date | None = None,
        until: date | None = None,
        sets: Sequence[str] | None = None,
        dry_run: bool = False,
    ) -> HarvestRequest:
        if start and until and start > until:
            raise UsageError(f"--from {start} is after --until {until}")
        chosen: tuple[str | None, ...] = tuple(sets) if sets else (cfg.sets or (None,))
        for spec in chosen:
            if spec is not None and not is_set_spec(spec):
                raise UsageError(f"{spec!r} is not an arXiv set spec (e.g. cs, physics:hep-th, cs:cs:LG)")
        return cls(start, until, chosen, dry_run)


@dataclass
class _Tally:
    pages: int = 0
    stats: PageStats = field(default_factory=PageStats)
    changes: Counter[str] = field(default_factory=Counter)
    years: Counter[int] = field(default_factory=Counter)
    restarts: int = 0

    def add_change(self, change: YearChange) -> None:
        for name in ("new", "updated", "unchanged", "deleted", "superseded"):
            self.changes[name] += getattr(change, name)
        touched = change.new + change.updated + change.deleted
        if touched:
            self.years[change.year] += touched


@dataclass(frozen=True)
class _Run:
    """What every window of one harvest works with."""

    cfg: IngestConfig
    layout: Layout
    runtime: Runtime
    client: OAIClient
    tally: _Tally
    dry_run: bool
    spools: Layout  # where window spools go: the data dir, or a scratch directory in a dry run
    wanted: frozenset[str]  # ingest.categories with the snapshot loader's equivalences


@dataclass(frozen=True)
class _Window:
    spec: str | None
    lo: date
    hi: date

    @property
    def label(self) -> str:
        return f"{set_key(self.spec)} {self.lo}..{self.hi}"


def run_harvest(cfg: IngestConfig, layout: Layout, request: HarvestRequest, runtime: Runtime) -> IngestReport:
    started = time.monotonic()
    verify_metadata_store(layout)  # a torn year file fails now, not at the merge after a long harvest
    client = OAIClient(cfg, runtime)
    today = runtime.clock().date()
    until = request.until or today
    state = load_state(layout)
    left = state.in_progress  # a window a killed or failed run did not finish: redone below
    tally = _Tally()
    set_reports = []
    scratch = Path(tempfile.mkdtemp(prefix="papersys-dry-run-")) if request.dry_run else None
    run = _Run(
        cfg=cfg,
        layout=layout,
        runtime=runtime,
        client=client,
        tally=tally,
        dry_run=request.dry_run,
        spools=layout if scratch is None else Layout(scratch),
        wanted=category_names(cfg.categories),  # the same category equivalences as the snapshot loader
    )
    try:
        for spec in request.sets:
            key = set_key(spec)
            point = resolve_start(
                request.start,
                state.watermark(key),
                today,
                overlap_days=cfg.overlap_days,
                initial_days=cfg.initial_days,
                unfinished=left.start if left is not None and left.set_key == key else None,
            )
            log.info("harvest set %s: %s .. %s (%s)", key, point.start, until, point.reason)
            windows = plan_windows(point.start, until, cfg.window_days)
            for lo, hi in windows:
                if not request.dry_run:
                    state = state.with_window(WindowInProgress(key, lo, hi, runtime.clock()))
                    save_state(layout, state)
                _harvest_window(run, _Window(spec, lo, hi))
                if not request.dry_run:
                    previous = state.watermark(key)
                    # never move a watermark back: a backfill of an old range leaves it where it was
                    mark = hi if previous is None else max(previous, hi)
                    crash_point("harvest.before_checkpoint")
                    state = state.with_checkpoint(key, Checkpoint(mark, runtime.clock())).with_window(None)
                    save_state(layout, state)
            set_reports.append(SetReport(key, point.start, until, point.reason, len(windows), state.watermark(key)))
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return IngestReport(
        sets=tuple(set_reports),
        pages=tally.pages,
        records=tally.stats.records + tally.stats.deleted,
        new=tally.changes["new"],
        updated=tally.changes["updated"],
        unchanged=tally.changes["unchanged"],
        deleted=tally.changes["deleted"],
        superseded=tally.changes["superseded"],
        filtered=tally.stats.filtered,
        invalid=tally.stats.invalid,
        requests=client.requests,
        retries=client.retries,
        window_restarts=tally.restarts,
        years=dict(tally.years),
        seconds=time.monotonic() - started,
        dry_run=request.dry_run,
    )


def _spool(spool: Spool, pending: list[ParsedPage]) -> None:
    """Write the buffered pages as one spool part (a part per page would mean thousands of tiny files)."""
    if pending:
        spool.add(pl.concat([p.records for p in pending]), pl.concat([p.deletions for p in pending]))
        pending.clear()


def _spool_pages(run: _Run, window: _Window, spool: Spool) -> tuple[int, PageStats]:
    """Fetch, parse and spool every page of the window once; returns the pages and what their records were."""
    cfg, runtime = run.cfg, run.runtime
    pages = PageStats()
    n_pages = 0
    pending: list[ParsedPage] = []
    buffered = 0
    task = runtime.progress.task(f"harvest {window.label}", unit="records")
    try:
        pages_in = run.client.pages(
            metadata_prefix=cfg.metadata_prefix, start=window.lo, until=window.hi, set_spec=window.spec
        )
        for page, parsed in pipeline(pages_in, lambda p: (p, parse_page_records(p.root, categories=run.wanted))):
            pending.append(parsed)
            buffered += parsed.records.height + parsed.deletions.height
            if buffered >= SPOOL_BATCH:
                _spool(spool, pending)
                buffered = 0
            crash_point("harvest.page")
            n_pages += 1
            pages.add(parsed.stats)
            if page.complete_list_size:
                task.update(total=page.complete_list_size)
            task.advance(parsed.stats.seen)
            runtime.observer.harvest_records(parsed.stats.records + parsed.stats.deleted)
            runtime.check_cancel()
        _spool(spool, pending)
    finally:
        task.close()
    return n_pages, pages


def _harvest_window(run: _Run, window: _Window) -> None:
    """Spool every page of one window, then merge it; nothing is merged unless every page arrived."""
    restarts = 0
    while True:
        spool = Spool(run.spools.harvest_spool_dir(set_key(window.spec)))
        spool.clear()  # a spool left by a killed run is partial: the window starts over
        try:
            n_pages, pages = _spool_pages(run, window, spool)
            break
        except StorageError:
            spool.clear()  # the rerun redoes the window from its first page: free the disk now
            raise
        except BadResumptionToken as exc:
            restarts += 1
            run.tally.restarts += 1
            run.runtime.observer.harvest_retry("bad_resumption_token")
            if restarts > run.cfg.max_retries:
                raise HarvestError(window.label, f"resumption token rejected {restarts} times ({exc})") from exc
            log.warning("%s: resumption token rejected (%s); restarting the window", window.label, exc)
    try:
        result = spool.merge(run.layout, dry_run=run.dry_run, on_year=run.tally.add_change)
    except StorageError:
        spool.clear()  # the rerun redoes the window from its first page: free the disk now
        raise
    if not run.dry_run:
        crash_point("harvest.merged")  # every year merged, spool and checkpoint not yet cleared/advanced
    log.info(
        "%s: %d pages, %d records, %d deletions merged (%d new, %d updated)",
        window.label,
        n_pages,
        pages.records,
        pages.deleted,
        result.total("new"),
        result.total("updated"),
    )
    spool.clear()
    run.tally.pages += n_pages
    run.tally.stats.add(pages)
