"""One migrated model's writes: per paper year, the store's state before the run and the hash each paper's
current metadata renders to; valid vectors that belong in the store go out as part files, compacted at
the end; the coverage afterwards is computed from the same state, so a dry run reports it too."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import numpy as np
import polars as pl

from papersys.embed.gaps import classify, coverage_of, orphan_ids
from papersys.embed.text import hash_texts, render_texts
from papersys.migrate.merge import MetadataMerge
from papersys.migrate.report import ModelYear
from papersys.migrate.targets import Target
from papersys.migrate.vectors import Matrix, action_counts, decide
from papersys.store.embeddings import EMBEDDED_AT, EmbeddingStore
from papersys.store.layout import Layout
from papersys.store.metadata import read_year

WRITTEN = ("new", "replaced")


class ModelWriter:
    def __init__(self, layout: Layout, target: Target, merge: MetadataMerge, *, dry_run: bool, now: datetime) -> None:
        self.layout, self.target, self.merge, self.dry_run, self.now = layout, target, merge, dry_run, now
        # A manifest settled later is a new one (no valid_since, the same dtype): what is known now holds throughout.
        self.valid_since = target.manifest.valid_since if target.manifest else None
        self.store: EmbeddingStore | None = None  # the column holds no vector at all: nothing to read or write
        if target.dim is not None:
            self.store = EmbeddingStore(layout, target.alias, target.dim, target.dtype, self.valid_since)
        self.stored: dict[int, pl.DataFrame] = {}  # id, text_hash, embedded_at, valid — before this run
        self.current: dict[int, pl.DataFrame] = {}  # id, current_hash
        self.written: dict[int, list[pl.DataFrame]] = {}  # id, text_hash
        self.actions: dict[int, Counter[str]] = {}
        self.settled = False

    def load(self, year: int) -> None:
        """Read one year's state once, before this run writes anything to it."""
        if year in self.stored:
            return
        assert self.store is not None
        self.stored[year] = self.store.read(year, vectors=False)
        meta = read_year(self.layout, year, ["id", "title", "abstract"])
        model = self.target.implied_model()
        hashes = hash_texts(render_texts(meta, model.template, model.prefix))
        current = pl.DataFrame({"id": meta["id"], "current_hash": hashes})
        applied = self.merge.applied_hashes(year)  # what this run stores (or would, in a dry run)
        self.current[year] = pl.concat([current.join(applied, on="id", how="anti"), applied])
        self.actions[year] = Counter()
        self.written[year] = []

    def settle(self, unit_norm: bool | None) -> None:
        """Fix the manifest at the first valid vector and write it before the first part."""
        if self.settled:
            return
        manifest = self.target.settle(unit_norm, self.now)
        if not self.dry_run and self.target.manifest_action == "created":
            assert self.store is not None
            self.store.write_manifest(manifest)
        self.settled = True

    def place(self, valid: pl.DataFrame, matrix: Matrix) -> Counter[str]:
        """Decide and write the valid vectors ``matrix`` of ``valid`` (``id, year, text_hash``, same order)."""
        totals: Counter[str] = Counter()
        indexed = valid.with_row_index("_i")
        for (year,), part in indexed.group_by("year", maintain_order=True):
            assert isinstance(year, int)
            self.load(year)
            stored = self.stored[year]
            if self.valid_since is not None:  # rows from before a re-embed are stale whatever their hash
                older = pl.col("embedded_at") < pl.lit(self.valid_since, dtype=EMBEDDED_AT)
                stored = stored.with_columns(
                    pl.when(older).then(None).otherwise(pl.col("text_hash")).alias("text_hash")
                )
            actions = decide(part.select("id", "text_hash"), stored, self.current[year])
            counts = action_counts(actions)
            self.actions[year].update(counts)
            totals.update(counts)
            chosen = part.filter(actions.is_in(WRITTEN))
            if chosen.height == 0:
                continue
            self.written[year].append(chosen.select("id", "text_hash"))
            if not self.dry_run:
                assert self.store is not None
                rows = np.asarray(chosen["_i"].to_numpy(), dtype=np.int64)
                frame = chosen.select("id", "text_hash").with_columns(
                    pl.Series("vector", matrix[rows]), pl.lit(self.now, dtype=EMBEDDED_AT).alias("embedded_at")
                )
                self.store.write_part(year, frame)
        return totals

    def compact(self) -> None:
        """Fold this run's parts (and any a killed run left) into the year files."""
        if self.dry_run or self.store is None:
            return
        for year in self.store.pending_years():
            self.store.compact(year)

    def years(self) -> dict[int, ModelYear]:
        """Per year this run looked at: what happened, and the coverage afterwards."""
        out = {}
        for year in sorted(self.stored):
            expected = self.current[year].rename({"current_hash": "text_hash"})
            written = pl.concat(
                [pl.DataFrame(schema={"id": pl.String, "text_hash": pl.String}), *self.written[year]]
            ).with_columns(pl.lit(self.now, dtype=EMBEDDED_AT).alias("embedded_at"), valid=pl.lit(True))
            before = self.stored[year].select("id", "text_hash", "embedded_at", "valid")
            after = pl.concat([before.join(written, on="id", how="anti"), written])
            classified = classify(expected, after, valid_since=self.valid_since)
            cov = coverage_of(classified, orphan_ids(expected, after).len())
            counts = self.actions[year]
            out[year] = ModelYear(
                new=counts["new"],
                replaced=counts["replaced"],
                unchanged=counts["unchanged"],
                kept=counts["kept"],
                no_metadata=counts["no_metadata"],
                coverage=cov,
            )
        return out
