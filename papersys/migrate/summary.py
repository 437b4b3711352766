"""The human summary of a migration report (a few lines per input, per metadata total and per model)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from papersys.migrate.report import InputReport, MigrationReport, ModelReport

_POISON = ("null", "zero", "nan", "inf", "wrong_dim")


def summary_lines(report: MigrationReport) -> list[str]:
    lines = [
        f"legacy {report.legacy_dir} -> {report.data_dir}{' (dry run: nothing written)' if report.dry_run else ''}"
    ]
    for inp in report.inputs:
        lines += _input_lines(inp)
    if report.ignored:
        lines.append(f"ignored {len(report.ignored)} other .parquet file(s): {', '.join(report.ignored[:5])}")
    lines.append(
        f"{report.rows_read:,} rows read; {report.duplicate_ids:,} ids had several copies, "
        f"{report.duplicate_rows:,} older copies dropped"
    )
    totals = {k: report.metadata_total(k) for k in ("new", "updated", "unchanged", "superseded")}
    lines.append(
        f"metadata: {totals['new']:,} new, {totals['updated']:,} updated, {totals['unchanged']:,} unchanged, "
        f"{totals['superseded']:,} kept from the store (newer or deleted), over {len(report.metadata)} year(s)"
    )
    for model in report.models:
        lines += _model_lines(model)
    lines.append("nothing new" if report.new == 0 else f"{report.new:,} rows new or changed")
    lines.append(f"{report.seconds:,.1f} s, {report.rows_read / max(report.seconds, 1e-9):,.0f} rows/s")
    if report.unusable:
        lines.append(f"{len(report.unusable)} input(s) unusable and skipped: fix them and run again")
    return lines


def _input_lines(inp: InputReport) -> list[str]:
    name = inp.file + (f" + {inp.vectors_file}" if inp.vectors_file else "")
    if not inp.usable:
        return [f"{name}: UNUSABLE, skipped", *(f"  {p}" for p in inp.problems)]
    ids = inp.ids
    line = (
        f"{name}: {inp.rows:,} rows, {inp.metadata_rows:,} newest copies ({inp.moved:,} filed under another year), "
        f"{inp.duplicates:,} older copies; ids: {ids.versioned:,} versioned, {ids.repaired:,} repaired, "
        f"{ids.flagged:,} flagged"
    )
    if inp.no_date:
        line += f"; {inp.no_date:,} without a date"
    lines = [line]
    for v in inp.vectors:
        poison = ", ".join(f"{getattr(v, k):,} {k}" for k in _POISON if getattr(v, k))
        lines.append(
            f"  {v.alias} ({v.column}, {v.dtype}): {v.rows:,} rows, dropped {v.dropped:,}"
            f"{f' ({poison})' if poison else ''}; {v.new:,} new, {v.replaced:,} replaced, "
            f"{v.unchanged:,} unchanged, {v.kept:,} kept from the store, {v.no_metadata:,} without metadata"
        )
    if inp.vector_ids is not None:
        vids = inp.vector_ids
        lines.append(
            f"  embedding file: {inp.vector_rows:,} rows; ids: {vids.versioned:,} versioned, "
            f"{vids.repaired:,} repaired, {vids.flagged:,} flagged"
        )
        samples = vids.samples
    else:
        samples = ()
    if inp.vectors_without_metadata:
        lines.append(f"  {inp.vectors_without_metadata:,} embedding rows without a metadata row (dropped)")
    for raw, fixed in ids.samples + samples:
        lines.append(f"  id {raw!r} -> {fixed!r}" if fixed else f"  id {raw!r} flagged (skipped)")
    lines += [f"  missing column {c} (null in the store)" for c in inp.missing_columns]
    lines += [f"  unexpected column {c}" for c in inp.unexpected_columns]
    lines += [f"  note: {n}" for n in inp.notes]
    return lines


def _model_lines(m: ModelReport) -> list[str]:
    if m.dim is None:
        return [f"model {m.alias}: no vectors in column {m.column!r}"]
    cov = m.coverage
    written = m.total("new") + m.total("replaced")
    years = sum(1 for y in m.years.values() if y.new or y.replaced)
    lines = [
        f"model {m.alias} ({m.name}, dim {m.dim}, {m.dtype}): {written:,} vectors new or replaced in {years} year(s), "
        f"{m.total('unchanged'):,} already there, {m.total('kept'):,} kept from the store; "
        f"manifest {m.manifest}{'' if m.configured else ' (not in the config)'}",
        f"  gaps left for autopatch: {cov.gaps:,} of {cov.papers:,} papers "
        f"(missing {cov.missing:,}, stale {cov.stale:,}, invalid {cov.invalid:,})",
    ]
    others = {k: v for k, v in m.lengths.items() if k != m.dim}
    if others:
        seen = ", ".join(f"{rows:,} rows of {length}" for length, rows in sorted(others.items()))
        lines.append(f"  other vector lengths seen (dropped as wrong_dim): {seen}")
    lines += [f"  note: {n}" for n in m.notes]
    if m.config_block:
        lines.append("  to keep it current with `papersys embed autopatch`, add to your config:")
        lines += [f"    {line}" for line in m.config_block]
    return lines
