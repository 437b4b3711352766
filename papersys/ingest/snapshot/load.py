"""Bulk-load the Kaggle arXiv metadata snapshot into the store: chunks → spool → one merge per year, resumably.

Each chunk is spooled and then committed to ``state/snapshot.json`` (byte offset, line number, counts);
a rerun with the same file continues from there, and a merge cut short re-merges only the years left.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from datetime import date
from functools import partial
from pathlib import Path

from papersys.config import IngestConfig
from papersys.faults import crash_point
from papersys.ingest.sets import RecordFilter
from papersys.ingest.snapshot.io import open_lines
from papersys.ingest.snapshot.parse import MAX_BAD_SAMPLES, ChunkResult, map_chunk
from papersys.ingest.snapshot.report import SnapshotReport, watermark_plan
from papersys.ingest.snapshot.state import (
    Counts,
    FileIdentity,
    SnapshotCheckpoint,
    clear_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from papersys.ingest.spool import Spool
from papersys.runtime import Runtime
from papersys.store.layout import Layout
from papersys.store.metadata import YearChange
from papersys.store.state import ALL_SETS, Checkpoint, load_state, save_state, set_key
from papersys.store.verify import verify_metadata_store

__all__ = ["SnapshotReport", "load_snapshot"]

log = logging.getLogger(__name__)

_CHANGE_FIELDS = ("new", "updated", "unchanged", "superseded", "rows")


def _add_counts(counts: Counts, lines: int, result: ChunkResult) -> Counts:
    newest = max((d for d in (counts.newest, result.newest) if d is not None), default=None)
    return Counts(
        lines=counts.lines + lines,
        valid=counts.valid + result.valid,
        kept=counts.kept + len(result.batch),
        filtered=counts.filtered + result.filtered,
        bad=counts.bad + result.bad,
        bad_samples=(counts.bad_samples + tuple(result.bad_samples))[:MAX_BAD_SAMPLES],
        newest=newest,
    )


def _spool_file(
    path: Path,
    spool: Spool,
    checkpoint: SnapshotCheckpoint,
    keep: RecordFilter,
    runtime: Runtime,
    chunk_lines: int,
    commit: Callable[[SnapshotCheckpoint], None],
) -> SnapshotCheckpoint:
    """Read from the checkpoint's offset to the end, spooling and committing chunk by chunk."""
    started = runtime.monotonic()
    parsed = 0
    with open_lines(path) as stream:
        progress = runtime.progress.task("snapshot", total=checkpoint.file.size, unit="B")
        try:
            stream.skip_to(checkpoint.offset)
            shown = stream.position()
            progress.advance(shown)
            while True:
                runtime.check_cancel()
                lines = stream.read_chunk(chunk_lines)
                if not lines:
                    break
                result = map_chunk(
                    lines,
                    checkpoint.line_no + 1,
                    keep,
                    samples_left=MAX_BAD_SAMPLES - len(checkpoint.counts.bad_samples),
                )
                kept = len(result.batch)
                if kept:
                    spool.add(result.batch.records())
                    crash_point("snapshot.spooled")  # parts written, chunk not committed
                counts = _add_counts(checkpoint.counts, len(lines), result)
                checkpoint = checkpoint.advance(
                    offset=checkpoint.offset + sum(map(len, lines)),
                    line_no=checkpoint.line_no + len(lines),
                    next_seq=spool.next_seq,
                    counts=counts,
                )
                commit(checkpoint)
                crash_point("snapshot.committed")
                parsed += result.valid
                position = stream.position()
                progress.advance(position - shown)
                shown = position
                rate = parsed / max(runtime.monotonic() - started, 1e-9)
                progress.update(description=f"snapshot ({rate:,.0f} records/s)")
        finally:
            progress.close()
    return checkpoint


def _resume_or_start(
    layout: Layout, identity: FileIdentity, keep: tuple[tuple[str, ...], tuple[str, ...]], notes: list[str]
) -> tuple[SnapshotCheckpoint, Spool, bool]:
    """The checkpoint and spool to continue with; a fresh pair (and a note saying why) when resuming is unsafe."""
    spool_dir = layout.snapshot_spool_dir
    previous, problem = read_checkpoint(layout.snapshot_checkpoint)
    if problem:
        notes.append(f"ignored an {problem}; started afresh")
    elif previous is not None and not previous.file.same_file(identity):
        notes.append(f"the unfinished load was of another file ({previous.file.path}); started afresh")
    elif previous is not None and previous.keep != keep:
        notes.append("the unfinished load used other ingest.sets/categories; started afresh")
    elif previous is not None:
        spool = Spool(spool_dir)
        if spool.next_seq < previous.next_seq:
            notes.append("the spool of the unfinished load is incomplete; started afresh")
        else:
            spool.drop_from(previous.next_seq)  # parts of a chunk spooled but never committed
            return replace(previous, runs=previous.runs + 1), spool, True
    spool = Spool(spool_dir)
    spool.clear()
    return SnapshotCheckpoint(file=identity, spool_dir=str(spool_dir), keep=keep), spool, False


def _watermark_keys(config: IngestConfig) -> list[str]:
    return [set_key(s) for s in config.sets] or [ALL_SETS]


def _merge(
    layout: Layout,
    spool: Spool,
    checkpoint: SnapshotCheckpoint,
    runtime: Runtime,
    dry_run: bool,
    commit: Callable[[SnapshotCheckpoint], None],
) -> SnapshotCheckpoint:
    todo = [y for y in spool.years() if y not in checkpoint.merged]
    progress = runtime.progress.task("snapshot merge", total=len(todo), unit="years")
    state = {"checkpoint": checkpoint}

    def on_year(change: YearChange) -> None:
        current = state["checkpoint"]
        merged = {**current.merged, change.year: {f: getattr(change, f) for f in _CHANGE_FIELDS}}
        state["checkpoint"] = current.advance(merged=merged)
        commit(state["checkpoint"])
        progress.advance(1)
        runtime.check_cancel()  # a safe point: this year is merged and recorded

    try:
        spool.merge(layout, dry_run=dry_run, on_year=on_year, skip_years=set(checkpoint.merged))
    finally:
        progress.close()
    return state["checkpoint"]


def _apply_watermark(
    layout: Layout, keys: list[str], checkpoint: SnapshotCheckpoint, runtime: Runtime, dry_run: bool
) -> dict[str, date | None]:
    """Set the watermark of every key that had none when the merge began; returns the watermarks after."""
    state = load_state(layout)
    before = checkpoint.watermarks_before or {}
    newest = checkpoint.counts.newest
    after: dict[str, date | None] = {}
    changed = False
    for key in keys:
        current = state.watermark(key)
        if before.get(key) is None and current is None and newest is not None:
            state = state.with_checkpoint(key, Checkpoint(newest, runtime.clock(), source="snapshot"))
            changed = True
            current = newest
        after[key] = current
    if changed and not dry_run:
        save_state(layout, state)
    return after


def load_snapshot(
    config: IngestConfig,
    layout: Layout,
    path: Path,
    *,
    dry_run: bool = False,
    runtime: Runtime,
) -> SnapshotReport:
    """Stream ``path`` (JSON lines; plain, .gz, .zst or a one-file .zip) into the metadata store.

    Upsert rule as for OAI: a stored row with a newer datestamp is kept. When the store had no watermark
    (per configured set, or ``all``), it is set to the snapshot's newest ``update_date``; an existing one
    is left alone. A dry run parses, filters and computes the merge in a temporary spool, writing nothing.
    """
    started = runtime.monotonic()
    identity = FileIdentity.of(path)
    verify_metadata_store(layout)  # a torn year file fails now, not at the merge after the whole read
    keep = RecordFilter.build(config.sets, config.categories)
    chunk_lines = config.snapshot_chunk_lines
    keys = _watermark_keys(config)
    notes: list[str] = []
    phases: dict[str, float] = {}
    with ExitStack() as stack:
        commit: Callable[[SnapshotCheckpoint], None]
        if dry_run:  # a private spool in the system temp dir, no checkpoint: nothing under data_dir changes
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="papersys-snapshot-dry-"))
            checkpoint, spool, resumed = SnapshotCheckpoint(file=identity, spool_dir=tmp), Spool(Path(tmp)), False
            commit = _no_commit
        else:
            checkpoint, spool, resumed = _resume_or_start(layout, identity, (config.sets, config.categories), notes)
            commit = partial(save_checkpoint, layout.snapshot_checkpoint)
        resumed_from = (checkpoint.offset, checkpoint.line_no) if resumed else None
        counted_before = checkpoint.counts.valid
        if resumed:
            log.info("resuming the snapshot load after line %d (%s phase)", checkpoint.line_no, checkpoint.phase)
        if checkpoint.phase == "spool":
            commit(checkpoint)
            mark = runtime.monotonic()
            checkpoint = _spool_file(path, spool, checkpoint, keep, runtime, chunk_lines, commit)
            phases["read"] = runtime.monotonic() - mark
            state = load_state(layout)
            checkpoint = checkpoint.advance(
                phase="merge", watermarks_before={k: _iso(state.watermark(k)) for k in keys}
            )
            commit(checkpoint)
        mark = runtime.monotonic()
        checkpoint = _merge(layout, spool, checkpoint, runtime, dry_run, commit)
        phases["merge"] = runtime.monotonic() - mark
        after = _apply_watermark(layout, keys, checkpoint, runtime, dry_run)
        if not dry_run:
            crash_point("snapshot.watermark_set")
            clear_checkpoint(layout.snapshot_checkpoint)  # first: a checkpoint never points at a missing spool
            crash_point("snapshot.checkpoint_cleared")
            spool.clear()
    return _report(
        path, checkpoint, keys, after, resumed_from, notes, dry_run,
        runtime.monotonic() - started, phases, checkpoint.counts.valid - counted_before,
    )  # fmt: skip


def _no_commit(checkpoint: SnapshotCheckpoint) -> None:
    return None


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


def _report(
    path: Path,
    checkpoint: SnapshotCheckpoint,
    keys: list[str],
    after: dict[str, date | None],
    resumed_from: tuple[int, int] | None,
    notes: list[str],
    dry_run: bool,
    seconds: float,
    phases: dict[str, float],
    parsed: int,
) -> SnapshotReport:
    before = {k: (date.fromisoformat(v) if v else None) for k, v in (checkpoint.watermarks_before or {}).items()}
    counts = checkpoint.counts
    return SnapshotReport(
        path=str(path),
        dry_run=dry_run,
        lines=counts.lines,
        records=counts.valid,
        kept=counts.kept,
        filtered=counts.filtered,
        bad=counts.bad,
        bad_samples=counts.bad_samples,
        years={year: dict(change) for year, change in sorted(checkpoint.merged.items())},
        newest_update_date=counts.newest,
        watermarks_before={k: before.get(k) for k in keys},
        watermarks_after=after,
        watermark_actions=watermark_plan(keys, before, after),
        resumed_from_byte=resumed_from[0] if resumed_from else None,
        resumed_from_line=resumed_from[1] if resumed_from else None,
        notes=tuple(notes),
        seconds=seconds,
        phases_s=phases,
        records_per_s=parsed / seconds if seconds > 0 else 0.0,
    )
