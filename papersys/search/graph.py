"""The approximate-nearest-neighbour graph (usearch HNSW): the one module importing usearch.

Keys are row numbers of the index's row files. The graph stores vectors quantised to int8 (cosine on
normalised vectors loses little: exact scores come from the float32 rows afterwards) and is memory-mapped
read-only by searchers (``view``), so a query touches only the pages it visits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

# usearch loads its SIMD library with RTLD_GLOBAL, after which importing onnxruntime (the query encoder)
# crashes the process; loaded the other way round both work. So the encoder's runtime goes first.
import onnxruntime  # noqa: F401  (first: see above)
from usearch.index import Index

from papersys.config import SearchConfig
from papersys.errors import StoreError

METRIC = "cos"
ADD_BATCH = 16_384  # rows per add() call: progress and cancellation points during a build


@dataclass(frozen=True)
class GraphParams:
    """HNSW parameters (recorded in the index manifest; changing them takes a rebuild)."""

    quantization: str = "i8"
    connectivity: int = 16
    expansion_add: int = 64
    expansion_search: int = 512

    @classmethod
    def of(cls, settings: SearchConfig) -> GraphParams:
        return cls(settings.quantization, settings.connectivity, settings.expansion_add, settings.expansion_search)

    def to_dict(self) -> dict[str, Any]:
        return {
            "quantization": self.quantization,
            "connectivity": self.connectivity,
            "expansion_add": self.expansion_add,
            "expansion_search": self.expansion_search,
        }


def library_version() -> str:
    import usearch

    return f"usearch {usearch.__version__}"


def new_graph(dim: int, params: GraphParams) -> Index:
    return Index(
        ndim=dim,
        metric=METRIC,
        dtype=params.quantization,
        connectivity=params.connectivity,
        expansion_add=params.expansion_add,
        expansion_search=params.expansion_search,
    )


def load_graph(path: Path, *, writable: bool, params: GraphParams) -> Index:
    """The graph at ``path``: memory-mapped for searching, or loaded into memory to be changed."""
    try:
        graph = Index.restore(
            str(path),
            view=not writable,
            connectivity=params.connectivity,
            expansion_add=params.expansion_add,
            expansion_search=params.expansion_search,
        )
    except Exception as exc:  # usearch raises RuntimeError/ValueError with its own text
        raise StoreError(path, f"cannot open the vector index graph ({exc}); run `papersys index --rebuild`") from exc
    if graph is None:
        raise StoreError(path, "is not a vector index graph; run `papersys index --rebuild`")
    return graph


def add_rows(
    graph: Index,
    rows: npt.NDArray[np.int64],
    vectors: Callable[[npt.NDArray[np.int64]], npt.NDArray[np.float32]],
    *,
    threads: int,
    on_batch: Callable[[int], None] | None = None,
) -> None:
    """Add ``rows`` (keys) with their vectors, fetched batch by batch from ``vectors(rows)``."""
    for start in range(0, len(rows), ADD_BATCH):
        keys = rows[start : start + ADD_BATCH]
        graph.add(keys.astype(np.uint64), vectors(keys), threads=threads)
        if on_batch is not None:
            on_batch(len(keys))


def remove_rows(graph: Index, rows: npt.NDArray[np.int64]) -> None:
    if len(rows):
        present = rows[np.asarray(graph.contains(rows.astype(np.uint64)), dtype=bool)]
        if len(present):
            graph.remove(present.astype(np.uint64))


def save_graph(graph: Index, path: Path) -> None:
    """Write the graph to ``path`` (a new file name: the manifest that names it is the commit)."""
    from papersys.store.atomic import atomic_path

    with atomic_path(path) as tmp:
        graph.save(str(tmp))


def search_graph(graph: Index, query: npt.NDArray[np.float32], count: int) -> npt.NDArray[np.int64]:
    """Row numbers of up to ``count`` approximate neighbours of ``query``."""
    if len(graph) == 0:
        return np.empty(0, dtype=np.int64)
    matches = graph.search(query, min(count, len(graph)), threads=1)
    keys = np.asarray(matches.keys, dtype=np.int64)
    return keys[: int(getattr(matches, "count", len(keys)))]
