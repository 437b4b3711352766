"""The vector index manifest: what an index reflects and which of its files are current (the commit point).

A writer writes row files, ANN indexes and dead-row lists first and this manifest last, atomically; a reader
reads it first and opens only what it names. Files it does not name are leftovers of a killed writer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from papersys.config import ModelConfig
from papersys.errors import StoreError
from papersys.runtime import utc_stamp
from papersys.search.ann import METRIC, AnnParams
from papersys.search.rows import RowCounts
from papersys.store.atomic import read_json, write_json
from papersys.store.layout import Layout

FORMAT = 2  # 2: faiss IVF (1 was a usearch HNSW graph)


@dataclass(frozen=True)
class IndexManifest:
    model: str  # alias
    name: str  # the model name the vectors were made with
    dim: int
    embedding: dict[str, Any]  # identity of the embedding manifest the vectors came under
    params: AnnParams = field(default_factory=AnnParams)
    metric: str = METRIC
    library: str = ""
    generation: int = 1
    rows: int = 0
    codes: int = 0
    ann_seq: int = 0  # 0: no ANN index yet (every row is in the exactly-searched tail)
    ann_rows: int = 0  # rows [0, ann_rows) are in the ANN index
    ann_lists: int = 0  # lists the ANN index was trained with
    dead_seq: int = 0  # 0: no dead rows
    dead: int = 0
    live: int = 0
    categories: tuple[str, ...] = ()
    signature: dict[str, Any] = field(default_factory=dict)  # {"embeddings": {year: sig}, "metadata": {...}}
    built_at: str = ""
    updated_at: str = ""
    format: int = FORMAT

    @property
    def counts(self) -> RowCounts:
        return RowCounts(rows=self.rows, codes=self.codes)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["params"] = self.params.to_dict()
        data["categories"] = list(self.categories)
        return data

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> IndexManifest:
        data = dict(raw)
        params = data.get("params", {})
        data["params"] = AnnParams(**{k: v for k, v in params.items() if k in AnnParams.__dataclass_fields__})
        data["categories"] = tuple(data.get("categories", ()))
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def touched(self, **changes: Any) -> IndexManifest:
        return replace(self, updated_at=utc_stamp(), **changes)

    def differences(self, model: ModelConfig, embedding: dict[str, Any] | None) -> list[str]:
        """How this index differs from what ``model`` (and its stored vectors' manifest) would make."""
        found = []
        if self.format != FORMAT:
            found.append(f"format {self.format} (this papersys reads {FORMAT})")
        if self.name != model.name:
            found.append(f"model {self.name!r} (configured: {model.name!r})")
        if self.dim != model.dim:
            found.append(f"dim {self.dim} (configured: {model.dim})")
        if self.metric != METRIC:
            found.append(f"metric {self.metric!r} (expected: {METRIC!r})")
        if embedding is not None and self.embedding != embedding:
            changed = sorted(
                k for k in set(self.embedding) | set(embedding) if self.embedding.get(k) != embedding.get(k)
            )
            found.append("embedding manifest changed (" + ", ".join(changed) + ")")
        return found


def read_index_manifest(layout: Layout, alias: str) -> IndexManifest | None:
    path = layout.vector_index_manifest(alias)
    raw = read_json(path)
    if raw is None:
        return None
    try:
        return IndexManifest.from_dict(raw)
    except (TypeError, ValueError, KeyError) as exc:
        raise StoreError(path, f"is not a vector index manifest ({exc}); run `papersys index --rebuild`") from exc


def write_index_manifest(layout: Layout, manifest: IndexManifest) -> None:
    write_json(manifest.to_dict(), layout.vector_index_manifest(manifest.model))
