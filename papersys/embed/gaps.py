"""Gap detection (pure): which papers of one model-year lack a valid, current vector, and coverage counts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime

import polars as pl

# missing: no row; invalid: null, NaN/inf, all-zero or wrong-length vector; stale: the text hash differs, or
# the row was embedded before the manifest's valid_since. Stored ids the metadata lacks are orphans: counted,
# never coverage.
STATUSES = ("valid", "missing", "invalid", "stale")
STATUS = pl.Enum(list(STATUSES))


@dataclass(frozen=True)
class Coverage:
    papers: int = 0
    valid: int = 0
    missing: int = 0
    invalid: int = 0
    stale: int = 0
    orphans: int = 0

    @property
    def gaps(self) -> int:
        return self.missing + self.invalid + self.stale

    def __add__(self, other: Coverage) -> Coverage:
        return Coverage(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def classify(expected: pl.DataFrame, stored: pl.DataFrame, *, valid_since: datetime | None = None) -> pl.DataFrame:
    """``expected`` (``id``, ``text_hash`` and any other columns) plus a ``status`` column.

    ``expected`` holds one row per paper with the hash of the text its current metadata renders to;
    ``stored`` holds ``id, text_hash, embedded_at, valid`` with one row per id (as ``read_embeddings`` gives).
    """
    right = stored.select(
        "id",
        pl.col("text_hash").alias("_stored_hash"),
        pl.col("embedded_at").alias("_embedded_at"),
        pl.col("valid").alias("_valid"),
    )
    stale = pl.col("_stored_hash").ne_missing(pl.col("text_hash"))
    if valid_since is not None:
        stale = stale | (pl.col("_embedded_at") < pl.lit(valid_since, dtype=pl.Datetime("us", "UTC")))
    status = (
        pl.when(pl.col("_valid").is_null())
        .then(pl.lit("missing"))
        .when(~pl.col("_valid"))
        .then(pl.lit("invalid"))
        .when(stale)
        .then(pl.lit("stale"))
        .otherwise(pl.lit("valid"))
        .cast(STATUS)
    )
    joined = expected.join(right, on="id", how="left", maintain_order="left")
    return joined.with_columns(status=status).drop("_stored_hash", "_embedded_at", "_valid")


def orphan_ids(expected: pl.DataFrame, stored: pl.DataFrame) -> pl.Series:
    """Stored ids that the metadata no longer has."""
    return stored.join(expected.select("id"), on="id", how="anti")["id"]


def coverage_of(classified: pl.DataFrame, orphans: int = 0) -> Coverage:
    counts = dict.fromkeys(STATUSES, 0)
    for status, count in classified.group_by("status").len().iter_rows():
        counts[str(status)] = int(count)
    return Coverage(papers=classified.height, orphans=orphans, **counts)
