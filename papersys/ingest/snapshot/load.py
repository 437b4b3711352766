"""Bulk-load the Kaggle arXiv metadata snapshot into the store: chunks → spool → one merge per year, resumably.

Each chunk is spooled and then committed to ``state/snapshot.json`` (byte offset, line number, counts);
a rerun with the same file continues from there, and a merge cut short re-merges only the years left.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import date
from functools import partial
from pathlib import Path

from papersys.config import IngestConfig
from papersys.faults import crash_point
from papersys.ingest.sets import RecordFilter
from papersys.ingest.snapshot.io import open_lines
from papersys.ingest.snapshot.parse import MAX_BAD_SAMPLES, map_chunk
from papersys.ingest.snapshot.report import SnapshotReport
from papersys.ingest.snapshot.state import (
    FileIdentity,
    SnapshotCheckpoint,
    clear_checkpoint,
    read_checkpoint,
    resume_refusal,
    save_checkpoint,
)
from papersys.ingest.snapshot.watermarks import keys_to_set, watermark_keys, watermark_plan
from papersys.ingest.spool import Spool
from papersys.runtime import Runtime
from papersys.store.layout import Layout
from papersys.store.metadata import YearChange
from papersys.store.state import Checkpoint, load_state, save_state
from papersys.store.verify import verify_metadata_store

__all__ = ["SnapshotReport", "load_snapshot"]

log = logging.getLogger(__name__)

_CHANGE_FIELDS = ("new", "updated", "unchanged", "superseded", "rows")


@dataclass(frozen=True)
class _Load:
    """One run of a load: what every step works with, passed as one value."""

    path: Path
    layout: Layout
    runtime: Runtime
    keep: RecordFilter
    chunk_lines: int
    keys: tuple[str, ...]  # the watermark keys the load covers
    dry_run: bool
    spool: Spool
    commit: Callable[[SnapshotCheckpoint], None]  # saves the checkpoint (nothing in a dry run)


def _spool_chunk(load: _Load, checkpoint: SnapshotCheckpoint, lines: list[bytes]) -> tuple[SnapshotCheckpoint, int]:
    """Map, spool and commit one chunk; returns the new checkpoint and how many lines were valid."""
    result = map_chunk(
        lines,
        checkpoint.line_no + 1,
        load.keep,
        samples_left=MAX_BAD_SAMPLES - len(checkpoint.counts.bad_samples),
    )
    if len(result.batch):
        load.spool.add(result.batch.records())
        crash_point("snapshot.spooled")  # parts written, chunk not committed
    checkpoint = checkpoint.advance(
        offset=checkpoint.offset + sum(map(len, lines)),
        line_no=checkpoint.line_no + len(lines),
        next_seq=load.spool.next_seq,
        counts=checkpoint.counts.plus(len(lines), result),
    )
    load.commit(checkpoint)
    crash_point("snapshot.committed")
    return checkpoint, result.valid


def _spool_file(load: _Load, checkpoint: SnapshotCheckpoint) -> SnapshotCheckpoint:
    """Read from the checkpoint's offset to the end, spooling and committing chunk by chunk."""
    runtime = load.runtime
    started = runtime.monotonic()
    parsed = 0
    with open_lines(load.path) as stream:
        progress = runtime.progress.task("snapshot", total=checkpoint.file.size, unit="B")
        try:
            stream.skip_to(checkpoint.offset)
            shown = stream.position()
            progress.advance(shown)
            while True:
                runtime.check_cancel()
                lines = stream.read_chunk(load.chunk_lines)
                if not lines:
                    break
                checkpoint, valid = _spool_chunk(load, checkpoint, lines)
                parsed += valid
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
    elif previous is not None and (refusal := resume_refusal(previous, identity, keep)):
        notes.append(f"{refusal}; started afresh")
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


def _read(load: _Load, checkpoint: SnapshotCheckpoint) -> SnapshotCheckpoint:
    """Phase ``spool``: read the rest of the file, then record the watermarks and enter phase ``merge``."""
    load.commit(checkpoint)
    checkpoint = _spool_file(load, checkpoint)
    state = load_state(load.layout)
    checkpoint = checkpoint.advance(phase="merge", watermarks_before={k: _iso(state.watermark(k)) for k in load.keys})
    load.commit(checkpoint)
    return checkpoint


def _merge(load: _Load, checkpoint: SnapshotCheckpoint) -> SnapshotCheckpoint:
    todo = [y for y in load.spool.years() if y not in checkpoint.merged]
    progress = load.runtime.progress.task("snapshot merge", total=len(todo), unit="years")
    state = {"checkpoint": checkpoint}

    def on_year(change: YearChange) -> None:
        current = state["checkpoint"]
        merged = {**current.merged, change.year: {f: getattr(change, f) for f in _CHANGE_FIELDS}}
        state["checkpoint"] = current.advance(merged=merged)
        load.commit(state["checkpoint"])
        progress.advance(1)
        load.runtime.check_cancel()  # a safe point: this year is merged and recorded

    try:
        load.spool.merge(load.layout, dry_run=load.dry_run, on_year=on_year, skip_years=set(checkpoint.merged))
    finally:
        progress.close()
    return state["checkpoint"]


def _apply_watermark(load: _Load, checkpoint: SnapshotCheckpoint) -> dict[str, date | None]:
    """Set the watermark of every key that had none when the merge began; returns the watermarks after."""
    state = load_state(load.layout)
    after = {key: state.watermark(key) for key in load.keys}
    newest = checkpoint.counts.newest
    if newest is None:
        return after
    chosen = keys_to_set(load.keys, checkpoint.watermarks_before or {}, after, newest)
    for key in chosen:
        state = state.with_checkpoint(key, Checkpoint(newest, load.runtime.clock(), source="snapshot"))
        after[key] = newest
    if chosen and not load.dry_run:
        save_state(load.layout, state)
    return after


def _finish(load: _Load) -> None:
    crash_point("snapshot.watermark_set")
    clear_checkpoint(load.layout.snapshot_checkpoint)  # first: a checkpoint never points at a missing spool
    crash_point("snapshot.checkpoint_cleared")
    load.spool.clear()


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
        load = _Load(
            path=path,
            layout=layout,
            runtime=runtime,
            keep=keep,
            chunk_lines=config.snapshot_chunk_lines,
            keys=tuple(watermark_keys(config.sets)),
            dry_run=dry_run,
            spool=spool,
            commit=commit,
        )
        resumed_from = (checkpoint.offset, checkpoint.line_no) if resumed else None
        counted_before = checkpoint.counts.valid
        if resumed:
            log.info("resuming the snapshot load after line %d (%s phase)", checkpoint.line_no, checkpoint.phase)
        if checkpoint.phase == "spool":
            mark = runtime.monotonic()
            checkpoint = _read(load, checkpoint)
            phases["read"] = runtime.monotonic() - mark
        mark = runtime.monotonic()
        checkpoint = _merge(load, checkpoint)
        phases["merge"] = runtime.monotonic() - mark
        after = _apply_watermark(load, checkpoint)
        if not dry_run:
            _finish(load)
    seconds = runtime.monotonic() - started
    return _report(
        load,
        checkpoint,
        after=after,
        resumed_from=resumed_from,
        notes=notes,
        seconds=seconds,
        phases=phases,
        parsed=checkpoint.counts.valid - counted_before,
    )


def _no_commit(checkpoint: SnapshotCheckpoint) -> None:
    return None


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


def _report(
    load: _Load,
    checkpoint: SnapshotCheckpoint,
    *,
    after: dict[str, date | None],
    resumed_from: tuple[int, int] | None,
    notes: list[str],
    seconds: float,
    phases: dict[str, float],
    parsed: int,
) -> SnapshotReport:
    before = {k: (date.fromisoformat(v) if v else None) for k, v in (checkpoint.watermarks_before or {}).items()}
    counts = checkpoint.counts
    return SnapshotReport(
        path=str(load.path),
        dry_run=load.dry_run,
        lines=counts.lines,
        records=counts.valid,
        kept=counts.kept,
        filtered=counts.filtered,
        bad=counts.bad,
        bad_samples=counts.bad_samples,
        years={year: dict(change) for year, change in sorted(checkpoint.merged.items())},
        newest_update_date=counts.newest,
        watermarks_before={k: before.get(k) for k in load.keys},
        watermarks_after=after,
        watermark_actions=watermark_plan(load.keys, before, after),
        resumed_from_byte=resumed_from[0] if resumed_from else None,
        resumed_from_line=resumed_from[1] if resumed_from else None,
        notes=tuple(notes),
        seconds=seconds,
        phases_s=phases,
        records_per_s=parsed / seconds if seconds > 0 else 0.0,
    )
