"""Legacy metadata into the store: every stored row at least as new (OAI, snapshot, a tombstone) stays; the
rest goes through ``metadata.upsert``, which rewrites only the year files that change."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import polars as pl

from papersys.store.layout import Layout
from papersys.store.metadata import COLUMNS, read_deletions, read_year, upsert


@dataclass
class MetadataMerge:
    """Counts per year, and the text hashes of the legacy rows that are (or would be, in a dry run) stored."""

    years: dict[int, Counter[str]] = field(default_factory=dict)
    applied: dict[int, list[pl.DataFrame]] = field(default_factory=dict)

    def add(self, layout: Layout, rows: pl.DataFrame, *, dry_run: bool) -> None:
        """Merge ``rows`` (the metadata schema plus ``text_hash`` and ``year``; one row per id)."""
        if rows.height == 0:
            return
        tombs = read_deletions(layout).select("id", pl.col("datestamp").alias("_tomb"))
        passing = []
        for (year,), part in rows.group_by("year", maintain_order=True):
            assert isinstance(year, int)
            stored = read_year(layout, year, ["id", "datestamp", "source"]).rename(
                {"datestamp": "_old", "source": "_src"}
            )
            joined = part.join(stored, on="id", how="left").join(tombs, on="id", how="left")
            tombstoned = pl.col("_tomb").is_not_null() & (pl.col("_tomb") >= pl.col("datestamp"))
            # legacy rows carry fewer fields than OAI or snapshot rows: those win ties as well
            older = pl.col("_old").is_not_null() & (
                (pl.col("_old") > pl.col("datestamp"))
                | ((pl.col("_old") == pl.col("datestamp")) & (pl.col("_src") != "legacy"))
            )
            kept = joined.filter(~tombstoned & ~older)
            self.years.setdefault(year, Counter())["superseded"] += joined.height - kept.height
            passing.append(kept)
            self.applied.setdefault(year, []).append(kept.select("id", pl.col("text_hash").alias("current_hash")))
        merged = pl.concat(passing)
        result = upsert(layout, merged.select(COLUMNS), dry_run=dry_run)
        for change in result.years:
            counter = self.years.setdefault(change.year, Counter())
            for what in ("new", "updated", "unchanged", "superseded"):
                counter[what] += getattr(change, what)

    def applied_hashes(self, year: int) -> pl.DataFrame:
        frames = self.applied.get(year, [])
        if not frames:
            return pl.DataFrame(schema={"id": pl.String, "current_hash": pl.String})
        return pl.concat(frames)

    def counts(self) -> dict[int, dict[str, int]]:
        return {
            year: {k: c[k] for k in ("new", "updated", "unchanged", "superseded")}
            for year, c in sorted(self.years.items())
        }
