"""The migration run: inspect and key every input (cheap columns only), pick one row per paper, merge the
metadata input by input, then per model read each input's vector column once and place it in row batches;
compact; report. Memory is bounded by one input's metadata or one model column of one input."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

import polars as pl

from papersys.config import Config
from papersys.errors import StoreError
from papersys.migrate.legacy import LegacyInput, discover, model_mapping
from papersys.migrate.merge import MetadataMerge
from papersys.migrate.read import read_metadata
from papersys.migrate.report import InputReport, MigrationReport, ModelReport
from papersys.migrate.source import READ_ERRORS, Source, open_input
from papersys.migrate.targets import Target, resolve_targets
from papersys.migrate.vectors import VALID, class_counts, classify_vectors, is_unit_norm
from papersys.migrate.winners import Winners, pick_winners, win_column
from papersys.migrate.writer import ModelWriter
from papersys.runtime import ProgressTask, Runtime
from papersys.store.layout import Layout
from papersys.store.metadata import COLUMNS
from papersys.store.verify import verify_metadata_store

BATCH_ROWS = 16_384  # vectors classified and written per part: 117 MB at 1792 dims


def run_migration(
    config: Config, legacy_dir: Path, specs: Sequence[str], runtime: Runtime, *, dry_run: bool = False
) -> MigrationReport:
    """Migrate every legacy file under ``legacy_dir`` into the store of ``config`` (see devdoc/migration.md)."""
    started = runtime.monotonic()
    now = runtime.clock()
    layout = Layout(config.data_dir)
    mapping = model_mapping(specs)
    found = discover(legacy_dir)
    reports: dict[str, InputReport] = {
        label: InputReport(label, 2, label, problems=(f"{label}: no metadata file beside it",))
        for label in found.orphans
    }
    sources: list[Source] = []
    for inp in found.inputs:
        runtime.check_cancel()
        opened = open_input(len(sources), inp, mapping)
        if isinstance(opened, InputReport):
            reports[inp.label] = opened
        else:
            sources.append(opened)
    present = [m for m in mapping if any(m in s.models for s in sources)]
    lengths = {m.alias: Counter[int]() for m in present}
    for s in sources:
        for alias, counts in s.lengths.items():
            lengths[alias].update(counts)
    targets = resolve_targets(config, layout, [(m, lengths[m.alias]) for m in present])  # raises before writing
    verify_metadata_store(layout)  # a torn store file fails before the first input is merged
    holders = {m.alias: [s.index for s in sources if m in s.models] for m in present}
    winners = pick_winners([s.keys.frame for s in sources], holders)
    merge = MetadataMerge()
    task = runtime.progress.task("migrate metadata", total=len(sources), unit="files")
    try:
        for s in sources:
            runtime.check_cancel()
            _merge_source(layout, s, winners, merge, dry_run=dry_run)
            task.advance()
    finally:
        task.close()
    models = [_migrate_model(layout, t, sources, merge, runtime, dry_run=dry_run, now=now) for t in targets]
    reports.update({s.inp.label: s.report() for s in sources})
    in_order = sorted(reports, key=_order(found.inputs))
    return MigrationReport(
        legacy_dir=str(legacy_dir),
        data_dir=str(layout.root),
        dry_run=dry_run,
        inputs=tuple(reports[label] for label in in_order),
        ignored=found.ignored,
        duplicate_ids=winners.duplicate_ids,
        duplicate_rows=winners.duplicate_rows,
        metadata=merge.counts(),
        models=tuple(models),
        seconds=runtime.monotonic() - started,
    )


def _order(inputs: Sequence[LegacyInput]) -> Callable[[str], tuple[int, str]]:
    rank = {inp.label: i for i, inp in enumerate(inputs)}
    return lambda label: (rank.get(label, len(rank)), label)


def _merge_source(layout: Layout, s: Source, winners: Winners, merge: MetadataMerge, *, dry_run: bool) -> None:
    """Merge the metadata this input wins; keep (id, year, hash) of the rows whose vectors it gives."""
    rows = winners.of_input(s.index)
    wins = [win_column(m.alias) for m in s.models]
    wanted = rows.filter(pl.any_horizontal(["win_meta", *wins]))
    s.duplicates = rows.height - wanted.height
    try:
        frame = read_metadata(s.inp, s.meta, wanted)
    except READ_ERRORS as exc:  # it passed the key pass: the file changed or is damaged past its schema
        raise StoreError(s.inp.path, f"cannot be read ({type(exc).__name__}: {exc})") from exc
    frame = frame.join(wanted.select("row", "erow", "win_meta", *wins), on="row", how="left", maintain_order="left")
    won = frame.filter("win_meta")
    s.metadata_rows = won.height
    s.moved = int((won["year"] != s.inp.year).sum())
    s.whitespace_only = int(won["whitespace_only"].sum())
    merge.add(layout, won.select(*COLUMNS, "text_hash", "year"), dry_run=dry_run)
    for m in s.models:
        picked = frame.filter(win_column(m.alias)).select("erow", "id", "year", "text_hash")
        s.rows_for[m.alias] = picked.sort("erow", nulls_last=True)


def _migrate_model(
    layout: Layout,
    t: Target,
    sources: list[Source],
    merge: MetadataMerge,
    runtime: Runtime,
    *,
    dry_run: bool,
    now: datetime,
) -> ModelReport:
    writer = ModelWriter(layout, t, merge, dry_run=dry_run, now=now)
    holding = [s for s in sources if t.legacy in s.models]
    total = sum(s.rows_for[t.alias].height for s in holding)
    task = runtime.progress.task(f"migrate {t.alias}", total=total, unit="rows")
    if not dry_run and writer.store is not None:
        writer.store.sweep()
    try:
        for s in holding:
            _migrate_source(s, t, writer, runtime, task)
    finally:
        task.close()
    if t.dim is not None:  # the gaps are reported for every year with metadata, as backlog counts them
        for year in sorted(set(layout.metadata_years()) | set(merge.years)):
            runtime.check_cancel()
            writer.load(year)
    writer.compact()
    return ModelReport(
        alias=t.alias,
        column=t.legacy.column,
        name=t.name,
        dim=t.dim,
        lengths=t.lengths,
        dtype=t.dtype,
        normalize=t.implied_model().normalize if t.dim else False,
        unit_norm=t.unit_norm,
        configured=t.model is not None,
        manifest=t.manifest_action,
        years=writer.years(),
        notes=tuple(t.notes),
        config_block=t.config_block(),
    )


def _migrate_source(s: Source, t: Target, writer: ModelWriter, runtime: Runtime, task: ProgressTask) -> None:
    rows = s.rows_for[t.alias]
    counts = s.counts.setdefault(t.alias, Counter())
    counts["rows"] += rows.height
    absent = rows.filter(pl.col("erow").is_null())  # generation 2: no row in the embedding file
    counts["null"] += absent.height
    rows = rows.filter(pl.col("erow").is_not_null())
    if t.dim is None:  # the column holds no vector at all
        counts["null"] += rows.height
        return
    for year in absent["year"].unique().to_list() + rows["year"].unique().to_list():
        writer.load(int(year))
    assert s.inp.vectors_path is not None
    column = pl.read_parquet(s.inp.vectors_path, columns=[t.legacy.column]).to_series()
    for start in range(0, rows.height, BATCH_ROWS):
        runtime.check_cancel()
        batch = rows.slice(start, BATCH_ROWS)
        codes, matrix = classify_vectors(column.gather(batch["erow"]), t.dim, t.dtype)
        counts.update(class_counts(codes))
        valid = batch.filter(pl.Series(codes == VALID))
        if valid.height:
            writer.settle(is_unit_norm(matrix))
            counts.update(writer.place(valid.select("id", "year", "text_hash"), matrix))
        task.advance(batch.height)
    task.advance(absent.height)
