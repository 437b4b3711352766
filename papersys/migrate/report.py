"""The migration report: per input file what was read and dropped, per year and model what was written, and
the gaps left for autopatch. Frozen values with ``to_dict()`` (the JSON report) and ``summary()``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from papersys.embed.gaps import Coverage
from papersys.migrate.summary import summary_lines
from papersys.report import Report

VECTOR_CLASSES = ("null", "zero", "nan", "inf", "wrong_dim")  # dropped, never copied into the store
ACTIONS = ("new", "replaced", "unchanged", "kept", "no_metadata")  # what became of the valid ones
METADATA_CHANGES = ("new", "updated", "unchanged", "superseded")


@dataclass(frozen=True)
class IdCounts:
    rows: int = 0
    versioned: int = 0  # version suffix stripped
    repaired: int = 0  # float round-trip damage undone (unambiguous)
    flagged: int = 0  # not an arXiv id, even after repair: the row is skipped
    samples: tuple[tuple[str, str], ...] = ()  # a few (raw, repaired id or "") of the repaired and flagged

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: getattr(self, k) for k in ("rows", "versioned", "repaired", "flagged")}
        out["samples"] = [{"raw": raw, "id": fixed or None} for raw, fixed in self.samples]
        return out


@dataclass(frozen=True)
class VectorCounts:
    """One model's vectors in one input: the rows that carried the paper's winning copy, by fate."""

    alias: str
    column: str
    dtype: str  # the legacy column's type
    rows: int = 0
    null: int = 0
    zero: int = 0
    nan: int = 0
    inf: int = 0
    wrong_dim: int = 0
    new: int = 0  # written: the store had no vector for the paper
    replaced: int = 0  # written over an invalid vector, or a stale one when this one is current
    unchanged: int = 0  # the store already holds this very vector (same text hash): a rerun
    kept: int = 0  # the store's own valid vector is at least as current: kept
    no_metadata: int = 0  # the paper has no metadata (deleted by arXiv): not written

    @property
    def dropped(self) -> int:
        return sum(getattr(self, k) for k in VECTOR_CLASSES)

    @property
    def written(self) -> int:
        return self.new + self.replaced

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)} | {"dropped": self.dropped}


@dataclass(frozen=True)
class InputReport:
    file: str
    generation: int
    vectors_file: str | None = None
    problems: tuple[str, ...] = ()  # non-empty: unusable, skipped as a whole
    missing_columns: tuple[str, ...] = ()  # optional columns absent (null in the store)
    unexpected_columns: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    rows: int = 0
    ids: IdCounts = field(default_factory=IdCounts)
    vector_rows: int = 0  # generation 2: rows of the embedding file
    vector_ids: IdCounts | None = None
    vectors_without_metadata: int = 0  # generation 2: embedding rows whose id the metadata file lacks
    no_date: int = 0  # rows without a parseable date: skipped
    duplicates: int = 0  # rows of which a newer copy (here or in another file) won everything
    metadata_rows: int = 0  # rows that are their paper's newest copy: this file gives its metadata
    moved: int = 0  # of those, filed under another year than the file's, by papersys's year rule
    whitespace_only: int = 0  # of those, the legacy text differs from papersys's only in whitespace
    vectors: tuple[VectorCounts, ...] = ()

    @property
    def usable(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out.update(
            usable=self.usable,
            problems=list(self.problems),
            missing_columns=list(self.missing_columns),
            unexpected_columns=list(self.unexpected_columns),
            notes=list(self.notes),
            ids=self.ids.to_dict(),
            vector_ids=self.vector_ids.to_dict() if self.vector_ids else None,
            vectors={v.alias: v.to_dict() for v in self.vectors},
        )
        return out


@dataclass(frozen=True)
class ModelYear:
    new: int = 0
    replaced: int = 0
    unchanged: int = 0
    kept: int = 0
    no_metadata: int = 0
    coverage: Coverage = field(default_factory=Coverage)  # of the year afterwards: what autopatch has left

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: getattr(self, k) for k in ACTIONS}
        return out | {"coverage": {**self.coverage.to_dict(), "gaps": self.coverage.gaps}}


@dataclass(frozen=True)
class ModelReport:
    alias: str
    column: str
    name: str
    dim: int | None  # None: the column held no vector at all
    lengths: Mapping[int, int]  # vector length -> rows (of every input): the majority is the dim
    dtype: str  # storage dtype
    normalize: bool  # what the manifest records
    unit_norm: bool | None  # whether the legacy vectors are unit length (from the first valid ones)
    configured: bool
    manifest: str  # "created" | "kept" | "none"
    years: Mapping[int, ModelYear] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    config_block: tuple[str, ...] = ()  # TOML to add so that autopatch keeps this model current

    def total(self, what: str) -> int:
        return sum(getattr(y, what) for y in self.years.values())

    @property
    def coverage(self) -> Coverage:
        return sum((y.coverage for y in self.years.values()), Coverage())

    def to_dict(self) -> dict[str, Any]:
        cov = self.coverage
        return {
            "alias": self.alias,
            "column": self.column,
            "name": self.name,
            "dim": self.dim,
            "lengths": {str(k): v for k, v in sorted(self.lengths.items())},
            "dtype": self.dtype,
            "normalize": self.normalize,
            "unit_norm": self.unit_norm,
            "configured": self.configured,
            "manifest": self.manifest,
            "totals": {k: self.total(k) for k in ACTIONS},
            "gaps": {**cov.to_dict(), "gaps": cov.gaps},
            "years": {str(y): v.to_dict() for y, v in sorted(self.years.items())},
            "notes": list(self.notes),
            "config_block": "\n".join(self.config_block),
        }


@dataclass(frozen=True)
class MigrationReport:
    legacy_dir: str
    data_dir: str
    dry_run: bool
    inputs: tuple[InputReport, ...]
    ignored: tuple[str, ...] = ()
    duplicate_ids: int = 0  # ids with more than one usable row
    duplicate_rows: int = 0  # rows dropped because another copy of the paper won
    metadata: Mapping[int, Mapping[str, int]] = field(default_factory=dict)  # per year: METADATA_CHANGES
    models: tuple[ModelReport, ...] = ()
    seconds: float = 0.0
    index: Report | None = None  # what updating the migrated models' search indexes did afterwards

    @property
    def unusable(self) -> tuple[InputReport, ...]:
        return tuple(i for i in self.inputs if not i.usable)

    @property
    def rows_read(self) -> int:
        return sum(i.rows for i in self.inputs)

    def vector_total(self, what: str) -> int:
        return sum(getattr(v, what) for i in self.inputs for v in i.vectors)

    def metadata_total(self, what: str) -> int:
        return sum(change.get(what, 0) for change in self.metadata.values())

    @property
    def new(self) -> int:
        """Rows this run added or changed (0 on a rerun)."""
        return sum(self.metadata_total(k) for k in ("new", "updated")) + sum(
            self.vector_total(k) for k in ("new", "replaced")
        )

    def counts(self) -> dict[str, int]:
        """The figures recorded in the job history."""
        out = {"inputs": len(self.inputs), "unusable": len(self.unusable), "rows": self.rows_read, "new": self.new}
        out |= {f"metadata_{k}": self.metadata_total(k) for k in METADATA_CHANGES}
        out |= {f"vectors_{k}": self.vector_total(k) for k in (*ACTIONS, *VECTOR_CLASSES)}
        out |= {"duplicate_rows": self.duplicate_rows, "gaps": sum(m.coverage.gaps for m in self.models)}
        out |= {f"ids_{k}": sum(getattr(i.ids, k) for i in self.inputs) for k in ("repaired", "flagged")}
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "legacy_dir": self.legacy_dir,
            "data_dir": self.data_dir,
            "dry_run": self.dry_run,
            "ok": not self.unusable,
            "new": self.new,
            "counts": self.counts(),
            "inputs": [i.to_dict() for i in self.inputs],
            "ignored": list(self.ignored),
            "duplicate_ids": self.duplicate_ids,
            "duplicate_rows": self.duplicate_rows,
            "metadata": {str(y): dict(c) for y, c in sorted(self.metadata.items())},
            "models": [m.to_dict() for m in self.models],
            "seconds": round(self.seconds, 3),
            "rows_per_s": round(self.rows_read / self.seconds, 1) if self.seconds > 0 else None,
            "index": self.index.to_dict() if self.index else None,
        }

    def summary(self) -> list[str]:
        return summary_lines(self) + (self.index.summary() if self.index else [])
