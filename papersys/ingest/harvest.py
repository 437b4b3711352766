"""The OAI-PMH harvest loop: windows → pages → spool → one merge per window → checkpoint."""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from papersys.config import IngestConfig, is_set_spec
from papersys.errors import HarvestError, UsageError
from papersys.faults import crash_point
from papersys.ingest.oai import BadResumptionToken, OAIClient
from papersys.ingest.parse import PageStats, ParsedPage, parse_page_records
from papersys.ingest.prefetch import pipeline
from papersys.ingest.sets import category_names
from papersys.ingest.spool import Spool
from papersys.ingest.windows import plan_windows, resolve_start
from papersys.runtime import Runtime
from papersys.store.layout import Layout
from papersys.store.metadata import YearChange
from papersys.store.state import Checkpoint, WindowInProgress, load_state, save_state, set_key
from papersys.store.verify import verify_metadata_store

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


@dataclass(frozen=True)
class SetReport:
    set: str
    start: date
    until: date
    reason: str
    windows: int
    watermark: date | None  # after the run


@dataclass(frozen=True)
class IngestReport:
    sets: tuple[SetReport, ...]
    pages: int
    records: int
    new: int
    updated: int
    unchanged: int
    deleted: int
    superseded: int
    filtered: int
    invalid: int
    requests: int
    retries: int
    window_restarts: int
    years: dict[int, int] = field(default_factory=dict)  # year → rows new/updated/deleted there
    seconds: float = 0.0
    dry_run: bool = False

    def counts(self) -> dict[str, int]:
        return {
            k: getattr(self, k)
            for k in (
                "pages",
                "records",
                "new",
                "updated",
                "unchanged",
                "deleted",
                "superseded",
                "filtered",
                "invalid",
                "requests",
                "retries",
            )
        }

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["years"] = {str(y): n for y, n in sorted(self.years.items())}
        for s in data["sets"]:
            for key in ("start", "until", "watermark"):
                s[key] = s[key].isoformat() if s[key] else None
        return data

    def summary(self) -> list[str]:
        lines = []
        for s in self.sets:
            lines.append(f"set {s.set}: {s.start} .. {s.until} in {s.windows} window(s) — {s.reason}")
        years = ", ".join(f"{y}: {n}" for y, n in sorted(self.years.items())) or "none"
        lines.append(
            f"{'[dry run] ' if self.dry_run else ''}{self.pages} pages, {self.records} records: "
            f"{self.new} new, {self.updated} updated, {self.unchanged} unchanged, {self.deleted} deleted"
            f"{f', {self.superseded} older than stored' if self.superseded else ''}"
            f"{f', {self.filtered} filtered out' if self.filtered else ''}"
            f"{f', {self.invalid} unusable' if self.invalid else ''}"
        )
        lines.append(f"years touched: {years}")
        lines.append(f"{self.requests} requests ({self.retries} retries) in {self.seconds:.1f}s")
        return lines


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
                spool_dir = (scratch or layout.spool_dir) / f"oai-{key.replace(':', '_')}"
                if not request.dry_run:
                    state = state.with_window(WindowInProgress(key, lo, hi, runtime.clock()))
                    save_state(layout, state)
                _harvest_window(client, cfg, layout, spool_dir, spec, lo, hi, request.dry_run, runtime, tally)
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


def _harvest_window(
    client: OAIClient,
    cfg: IngestConfig,
    layout: Layout,
    spool_dir: Path,
    spec: str | None,
    lo: date,
    hi: date,
    dry_run: bool,
    runtime: Runtime,
    tally: _Tally,
) -> None:
    """Spool every page of one window, then merge it; nothing is merged unless every page arrived."""
    label = f"{set_key(spec)} {lo}..{hi}"
    wanted = category_names(cfg.categories)  # the same category equivalences as the snapshot loader
    restarts = 0
    while True:
        spool = Spool(spool_dir)
        spool.clear()  # a spool left by a killed run is partial: the window starts over
        pages = PageStats()
        n_pages = 0
        pending: list[ParsedPage] = []
        buffered = 0
        task = runtime.progress.task(f"harvest {label}", unit="records")
        try:
            pages_in = client.pages(metadata_prefix=cfg.metadata_prefix, start=lo, until=hi, set_spec=spec)
            for page, parsed in pipeline(pages_in, lambda p: (p, parse_page_records(p.root, categories=wanted))):
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
            break
        except BadResumptionToken as exc:
            restarts += 1
            tally.restarts += 1
            runtime.observer.harvest_retry("bad_resumption_token")
            if restarts > cfg.max_retries:
                raise HarvestError(label, f"resumption token rejected {restarts} times ({exc})") from exc
            log.warning("%s: resumption token rejected (%s); restarting the window", label, exc)
        finally:
            task.close()
    result = spool.merge(layout, dry_run=dry_run, on_year=tally.add_change)
    if not dry_run:
        crash_point("harvest.merged")  # every year merged, spool and checkpoint not yet cleared/advanced
    log.info(
        "%s: %d pages, %d records, %d deletions merged (%d new, %d updated)",
        label,
        n_pages,
        pages.records,
        pages.deleted,
        result.total("new"),
        result.total("updated"),
    )
    spool.clear()
    tally.pages += n_pages
    tally.stats.add(pages)
