"""What an index is built from: per year, the stored valid vectors joined with the papers' filter fields.

Only vectors that are valid and current for the model's manifest are indexed; a paper whose metadata is
gone (deleted) is not. Signatures of the input files tell an update which years changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from papersys.config import ModelConfig
from papersys.errors import StoreError
from papersys.store.atomic import file_stat
from papersys.store.embeddings import EmbeddingStore, Manifest, read_manifest
from papersys.store.layout import Layout
from papersys.store.metadata import read_year

EPOCH_DAY = pl.date(1970, 1, 1)


@dataclass(frozen=True)
class Source:
    """One model's embedding store and the metadata beside it."""

    layout: Layout
    model: ModelConfig
    store: EmbeddingStore
    manifest: Manifest | None

    @classmethod
    def of(cls, layout: Layout, model: ModelConfig) -> Source:
        manifest = read_manifest(layout, model.alias)
        valid_since = manifest.valid_since if manifest else None
        store = EmbeddingStore(layout, model.alias, model.dim, model.dtype, valid_since)
        return cls(layout, model, store, manifest)

    def identity(self) -> dict[str, Any] | None:
        """What the index must match of the vectors' manifest (a change means a rebuild)."""
        if self.manifest is None:
            return None
        since = self.manifest.valid_since
        return {**self.manifest.identity(), "valid_since": since.isoformat() if since else None}

    def years(self) -> list[int]:
        return self.store.years()

    def signature(self) -> dict[str, dict[str, Any]]:
        """Fingerprints of every input file, per year: an index built from them is current while they hold."""
        return {
            "embeddings": {str(y): self.store.files_signature(y) for y in self.store.years()},
            "metadata": {str(y): file_stat(self.layout.metadata_file(y)) for y in self.layout.metadata_years()},
        }

    def year(self, year: int) -> pl.DataFrame:
        """``id, stamp, created, categories, vector`` of the indexable papers of ``year``, sorted by id."""
        vectors = self.store.read(year)
        if self.manifest is not None and self.manifest.valid_since is not None:
            vectors = vectors.filter(pl.col("embedded_at") >= self.manifest.valid_since)
        vectors = vectors.filter(pl.col("valid")).select(
            "id", pl.col("embedded_at").dt.epoch("us").alias("stamp"), "vector"
        )
        meta = read_year(self.layout, year, columns=["id", "created", "categories"])
        meta = meta.select(
            "id",
            (pl.col("created") - EPOCH_DAY).dt.total_days().cast(pl.Int32).alias("created"),
            pl.col("categories"),
        )
        return vectors.join(meta, on="id", how="inner").sort("id")


def changed_years(old: dict[str, Any], new: dict[str, Any]) -> list[int]:
    """Years whose embedding or metadata files differ between two signatures (or exist in only one)."""
    years: set[int] = set()
    for part in ("embeddings", "metadata"):
        before, after = old.get(part, {}), new.get(part, {})
        years |= {int(y) for y in set(before) | set(after) if before.get(y) != after.get(y)}
    return sorted(years, reverse=True)


def as_vectors(frame: pl.DataFrame, dim: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    if frame.height == 0:
        return np.empty((0, dim), dtype=np.float32)
    return np.ascontiguousarray(frame["vector"].to_numpy(), dtype=np.float32).reshape(frame.height, dim)


def index_state(layout: Layout, model: ModelConfig, valid: int) -> dict[str, Any]:
    """What ``status`` says of a model's index: indexed papers and how far it is behind the store
    (``valid`` stored vectors; the years whose files changed since the index was last updated)."""
    from papersys.search.manifest import read_index_manifest

    try:
        manifest = read_index_manifest(layout, model.alias)
    except StoreError as exc:
        return {"indexed": 0, "behind": valid, "current": False, "problem": str(exc)}
    if manifest is None:
        return {"indexed": 0, "behind": valid, "current": valid == 0, "updated_at": None, "changed_years": []}
    changed = changed_years(manifest.signature, Source.of(layout, model).signature())
    return {
        "indexed": manifest.live,
        "behind": max(valid - manifest.live, 0) if changed else 0,
        "current": not changed,
        "updated_at": manifest.updated_at or manifest.built_at,
        "changed_years": changed,
    }
