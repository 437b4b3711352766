"""Building and updating a model's vector index, kill-safely: files first, the manifest last.

An update appends rows for new and re-embedded papers, marks replaced and deleted papers' rows dead, and
merges the rows added since the last merge into the ANN index once they are many. A full build (first run,
``--rebuild``, other vectors, or too many dead rows) writes a new generation beside the old one and
switches to it in one manifest write. Files no manifest names are leftovers of a killed run: swept.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from papersys.config import ModelConfig, SearchConfig
from papersys.faults import crash_point
from papersys.runtime import Runtime, utc_stamp
from papersys.search import ann as ann_set
from papersys.search.maintain import dead_rows, merge_ann, save_dead, sweep_index, wants_merge
from papersys.search.manifest import IndexManifest, read_index_manifest, write_index_manifest
from papersys.search.report import IndexReport
from papersys.search.rows import ID_BYTES, RowBatch, RowFiles
from papersys.search.source import Source, as_vectors, changed_years
from papersys.store.atomic import remove
from papersys.store.layout import Layout

log = logging.getLogger(__name__)
REBUILD_DEAD_SHARE = 0.25  # more dead rows than this share of all rows: compact by rebuilding


@dataclass
class _Delta:
    """What one update does: rows to append, rows to mark dead, and the category vocabulary grown."""

    vocabulary: list[str]
    batches: list[RowBatch]
    dead: list[np.ndarray[Any, np.dtype[np.int64]]]
    added: int = 0
    replaced: int = 0
    removed: int = 0

    def code(self, category: str) -> int:
        try:
            return self.vocabulary.index(category)
        except ValueError:
            self.vocabulary.append(category)
            return len(self.vocabulary) - 1


def update_index(
    layout: Layout, model: ModelConfig, *, settings: SearchConfig, rebuild: bool = False, runtime: Runtime
) -> IndexReport:
    """Bring ``model``'s index up to date with its stored vectors (build it when there is none)."""
    began = time.monotonic()
    source = Source.of(layout, model)
    try:
        old = read_index_manifest(layout, model.alias)
    except Exception as exc:  # a damaged manifest: the index is derived data, build it again
        log.warning("vector index of %s is unreadable (%s): rebuilding it", model.alias, exc)
        old, rebuild = None, True
    if source.identity() is None:
        return IndexReport(model.alias, "no-vectors", live=0, seconds=time.monotonic() - began)
    signature = source.signature()
    reasons = _rebuild_reasons(old, model, source, settings=settings, rebuild=rebuild)
    if not reasons and old is not None and old.signature == signature:
        return IndexReport(model.alias, "current", live=old.live, rows=old.rows, seconds=time.monotonic() - began)
    if reasons:
        log.info("building the vector index of %s (%s)", model.alias, "; ".join(reasons))
        manifest, delta = _build(source, old, signature, settings=settings, runtime=runtime)
        action = "built"
    else:
        assert old is not None
        manifest, delta = _update(source, old, signature, settings=settings, runtime=runtime)
        action = "updated"
    sweep_index(layout, manifest)
    return IndexReport(
        model.alias,
        action,
        live=manifest.live,
        rows=manifest.rows,
        added=delta.added,
        replaced=delta.replaced,
        removed=delta.removed,
        seconds=time.monotonic() - began,
    )


def _rebuild_reasons(
    old: IndexManifest | None, model: ModelConfig, source: Source, *, settings: SearchConfig, rebuild: bool
) -> list[str]:
    if rebuild:
        return ["asked to rebuild"]
    if old is None:
        return ["no index yet"]
    reasons = old.differences(model, source.identity())
    wanted = ann_set.AnnParams.of(settings)
    for name in ("quantization", "lists"):
        if getattr(old.params, name) != getattr(wanted, name):
            reasons.append(f"[search] {name} is {getattr(wanted, name)!r}, the index has {getattr(old.params, name)!r}")
    if old.rows and old.dead / old.rows > REBUILD_DEAD_SHARE:
        reasons.append(f"{old.dead:,} of {old.rows:,} rows are dead")
    return reasons


def _build(
    source: Source, old: IndexManifest | None, signature: dict[str, Any], *, settings: SearchConfig, runtime: Runtime
) -> tuple[IndexManifest, _Delta]:
    layout, model = source.layout, source.model
    generation = (old.generation + 1) if old else 1
    files = RowFiles(layout.vector_index_rows(model.alias, generation), model.dim)
    for path in files.paths.values():  # a killed build of this generation left these
        remove(path)
    manifest = IndexManifest(
        model=model.alias,
        name=model.name,
        dim=model.dim,
        embedding=source.identity() or {},
        params=ann_set.AnnParams.of(settings),
        library=ann_set.library_version(),
        generation=generation,
        built_at=utc_stamp(),
    )
    files.cut(manifest.counts)
    delta = _Delta(vocabulary=[], batches=[], dead=[])
    task = runtime.progress.task(f"index {model.alias}: read", total=len(source.years()), unit="years")
    rows = codes = 0
    for year in source.years():
        runtime.check_cancel()
        batch = _batch(source.year(year), year, model.dim, delta)
        files.append(batch)
        rows, codes = rows + len(batch), codes + len(batch.cats)
        task.advance()
    task.close()
    delta.added = rows
    manifest = manifest.touched(
        rows=rows, codes=codes, live=rows, categories=tuple(delta.vocabulary), signature=signature
    )
    crash_point("index.rows_written")
    if wants_merge(settings, rows=manifest.rows, ann_rows=0):
        manifest = merge_ann(layout, manifest, runtime=runtime)
    write_index_manifest(layout, manifest)
    return manifest, delta


def _update(
    source: Source, old: IndexManifest, signature: dict[str, Any], *, settings: SearchConfig, runtime: Runtime
) -> tuple[IndexManifest, _Delta]:
    layout, model = source.layout, source.model
    files = RowFiles(layout.vector_index_rows(model.alias, old.generation), model.dim)
    files.cut(old.counts)  # bytes a killed update appended past what the manifest vouches for
    columns = files.open(old.counts)
    dead = dead_rows(layout, old)
    live_mask = np.ones(old.rows, dtype=bool)
    live_mask[dead] = False
    delta = _Delta(vocabulary=list(old.categories), batches=[], dead=[])
    offsets = np.zeros(old.rows + 1, dtype=np.int64)
    np.cumsum(columns["ncat"], out=offsets[1:])
    for year in changed_years(old.signature, signature):
        runtime.check_cancel()
        rows = np.flatnonzero((np.asarray(columns["year"]) == year) & live_mask).astype(np.int64)
        indexed = _indexed(columns, offsets, rows, old.categories)
        _diff_year(source.year(year), indexed, year, model.dim, delta)
    appended = sum(len(b) for b in delta.batches)
    for batch in delta.batches:
        files.append(batch)
    crash_point("index.rows_written")
    all_dead = np.unique(np.concatenate([dead, *delta.dead])) if delta.dead else dead
    manifest = old.touched(
        rows=old.rows + appended,
        codes=old.codes + sum(len(b.cats) for b in delta.batches),
        live=old.live + appended - sum(len(d) for d in delta.dead),
        categories=tuple(delta.vocabulary),
        signature=signature,
    )
    if delta.dead:
        seq = old.dead_seq + 1
        save_dead(layout.vector_index_dead(model.alias, old.generation, seq), all_dead)
        manifest = manifest.touched(dead_seq=seq, dead=len(all_dead))
    if wants_merge(settings, rows=manifest.rows, ann_rows=manifest.ann_rows):
        manifest = merge_ann(layout, manifest, runtime=runtime)
    write_index_manifest(layout, manifest)
    return manifest, delta


def _diff_year(current: pl.DataFrame, indexed: pl.DataFrame, year: int, dim: int, delta: _Delta) -> None:
    """Compare a year's indexable papers with its live rows: append new and changed papers, drop the rest."""
    joined = current.join(indexed, on="id", how="full", suffix="_old", coalesce=True)
    gone = joined.filter(pl.col("stamp").is_null())
    same = (
        (pl.col("stamp") == pl.col("stamp_old"))
        & (pl.col("created").fill_null(-(2**31)) == pl.col("created_old").fill_null(-(2**31)))
        & (pl.col("categories") == pl.col("categories_old"))
    )
    changed = joined.filter(pl.col("stamp").is_not_null() & pl.col("row").is_not_null() & ~same)
    new = joined.filter(pl.col("stamp").is_not_null() & pl.col("row").is_null())
    delta.removed += gone.height
    delta.replaced += changed.height
    delta.added += new.height
    stale = pl.concat([gone["row"], changed["row"]]).to_numpy().astype(np.int64)
    if len(stale):
        delta.dead.append(stale)
    fresh = current.filter(pl.col("id").is_in(pl.concat([changed["id"], new["id"]]).implode()))
    if fresh.height:
        delta.batches.append(_batch(fresh, year, dim, delta))


def _indexed(
    columns: dict[str, Any], offsets: np.ndarray[Any, np.dtype[np.int64]], rows: Any, vocabulary: tuple[str, ...]
) -> pl.DataFrame:
    """``row, id, stamp_old, created_old, categories_old`` of the given live rows."""
    counts = np.asarray(columns["ncat"])[rows].astype(np.int64)
    starts = offsets[rows]
    total = int(counts.sum())
    within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    codes = np.asarray(columns["cats"])[np.repeat(starts, counts) + within]
    names = np.asarray(vocabulary, dtype=object)[codes] if total else np.empty(0, dtype=object)
    cats = (
        pl.DataFrame({"row": np.repeat(rows, counts), "categories_old": pl.Series(names.tolist(), dtype=pl.String)})
        .group_by("row", maintain_order=True)
        .agg("categories_old")
    )
    frame = pl.DataFrame(
        {
            "row": rows,
            "id": pl.Series(np.asarray(columns["ids"])[rows]).cast(pl.Binary).cast(pl.String),
            "stamp_old": np.asarray(columns["stamp"])[rows],
            "created_old": np.asarray(columns["created"])[rows],
        },
        schema_overrides={"row": pl.Int64},
    )
    frame = frame.join(cats, on="row", how="left").with_columns(
        pl.col("categories_old").fill_null(pl.lit([], dtype=pl.List(pl.String)))
    )
    return frame.with_columns(pl.col("created_old").replace(np.iinfo(np.int32).min, None))


def _batch(frame: pl.DataFrame, year: int, dim: int, delta: _Delta) -> RowBatch:
    ids = frame["id"].to_list()
    too_long = [i for i in ids if len(i.encode()) > ID_BYTES]
    if too_long:
        raise ValueError(f"paper id {too_long[0]!r} is longer than {ID_BYTES} bytes")
    cats = frame["categories"].to_list()
    codes = np.asarray([delta.code(c) for row in cats for c in (row or [])], dtype=np.uint16)
    created = frame["created"].fill_null(np.iinfo(np.int32).min).to_numpy().astype(np.int32)
    columns = {
        "ids": np.asarray([i.encode() for i in ids], dtype=f"S{ID_BYTES}"),
        "year": np.full(len(ids), year, dtype=np.int16),
        "stamp": frame["stamp"].to_numpy().astype(np.int64),
        "created": created,
        "ncat": np.asarray([len(row or []) for row in cats], dtype=np.uint8),
    }
    return RowBatch(columns=columns, cats=codes, vectors=as_vectors(frame, dim))
