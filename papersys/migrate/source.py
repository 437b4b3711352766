"""One legacy input as the migration sees it: its column checks and key pass (``open_input``), then what the
run learns about it (duplicates, moved rows, vector classes and actions), reported as an ``InputReport``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl

from papersys.migrate.legacy import (
    GEN1_COLUMNS,
    GEN2_COLUMNS,
    GEN2_VECTOR_COLUMNS,
    Inspection,
    LegacyInput,
    LegacyModel,
    gen2_vectors_name,
    inspect_file,
)
from papersys.migrate.read import Keys, read_keys, vector_lengths
from papersys.migrate.report import InputReport, VectorCounts

READ_ERRORS = (pl.exceptions.PolarsError, OSError, ValueError)


@dataclass
class Source:
    """A usable input and what the run learns about it."""

    index: int
    inp: LegacyInput
    meta: Inspection
    vectors: Inspection | None
    keys: Keys
    lengths: dict[str, dict[int, int]]  # alias -> vector length -> rows
    notes: list[str] = field(default_factory=list)
    rows_for: dict[str, pl.DataFrame] = field(default_factory=dict)  # alias -> erow, id, year, text_hash
    counts: dict[str, Counter[str]] = field(default_factory=dict)  # alias -> classes and actions
    duplicates: int = 0
    metadata_rows: int = 0
    moved: int = 0
    whitespace_only: int = 0

    @property
    def models(self) -> tuple[LegacyModel, ...]:
        return self.vectors.models if self.vectors else ()

    def report(self) -> InputReport:
        inp, keys = self.inp, self.keys
        return InputReport(
            file=inp.label,
            generation=inp.generation,
            vectors_file=inp.vectors_label,
            missing_columns=self.meta.missing,
            unexpected_columns=_unexpected(self.meta, self.vectors),
            notes=tuple(self.notes) + keys.notes,
            rows=keys.rows,
            ids=keys.ids,
            vector_rows=keys.vector_rows,
            vector_ids=keys.vector_ids,
            vectors_without_metadata=keys.vectors_without_metadata,
            no_date=keys.no_date,
            duplicates=self.duplicates,
            metadata_rows=self.metadata_rows,
            moved=self.moved,
            whitespace_only=self.whitespace_only,
            vectors=tuple(self._vector_counts(m) for m in self.models),
        )

    def _vector_counts(self, model: LegacyModel) -> VectorCounts:
        column_type = str(self.vectors.schema[model.column]) if self.vectors else ""
        return VectorCounts(model.alias, model.column, column_type, **self.counts.get(model.alias, Counter()))


def _unexpected(meta: Inspection, vectors: Inspection | None) -> tuple[str, ...]:
    extra = vectors.unexpected if vectors is not None and vectors is not meta else ()
    return meta.unexpected + tuple(f"embedding file: {c}" for c in extra if c != "id")


def open_input(index: int, inp: LegacyInput, mapping: Sequence[LegacyModel]) -> Source | InputReport:
    """Check one input's columns and run its key pass; an unusable input comes back as its report."""
    if inp.generation == 1:
        meta = inspect_file(inp.path, GEN1_COLUMNS, mapping)
        vectors: Inspection | None = meta
    else:
        meta = inspect_file(inp.path, GEN2_COLUMNS, mapping, vectors=False)
        vectors = inspect_file(inp.vectors_path, GEN2_VECTOR_COLUMNS, mapping) if inp.vectors_path else None
    problems = meta.problems + (vectors.problems if vectors is not None and vectors is not meta else ())
    if problems:
        return InputReport(
            inp.label,
            inp.generation,
            inp.vectors_label,
            problems=problems,
            missing_columns=meta.missing,
            unexpected_columns=meta.unexpected,
        )
    notes = []
    if inp.generation == 2 and vectors is None:
        notes.append(f"no {gen2_vectors_name(inp.year)} beside it: metadata only")
    elif vectors is not None and not vectors.models:
        notes.append("no mapped vector column: metadata only (see unexpected columns)")
    try:
        keys = read_keys(inp, meta, vectors)
        lengths = {}
        if vectors is not None and inp.vectors_path is not None:
            for m in vectors.models:
                lengths[m.alias] = vector_lengths(inp.vectors_path, m.column, vectors.schema[m.column])
    except READ_ERRORS as exc:
        problem = f"{inp.label}: cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        return InputReport(inp.label, inp.generation, inp.vectors_label, problems=(problem,))
    return Source(index, inp, meta, vectors, keys, lengths, notes)
