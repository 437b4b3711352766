"""Reading a vector index: approximate candidates from the graph and the tail, exact cosine from the rows.

Scores are exact: candidates from the int8 graph (plus an exact scan of the rows added since the graph was
last merged) are re-scored with the float32 row vectors. A filtered query scans the matching rows exactly
when they are few, and otherwise oversamples the graph until k matches are found (falling back to an
exact scan), so it returns k results whenever k papers match.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from papersys.config import ModelConfig
from papersys.errors import SearchError, StoreError
from papersys.search.graph import load_graph, search_graph
from papersys.search.manifest import IndexManifest, read_index_manifest
from papersys.search.rows import ID_BYTES, RowFiles
from papersys.store.layout import Layout

Rows = npt.NDArray[np.int64]
EXACT_LIMIT = 60_000  # a filter matching at most this many rows is answered by an exact scan
SCAN_CHUNK = 32_768  # rows scored at a time in an exact scan (bounded memory)
OVERSAMPLE = 4  # graph candidates per wanted result before re-ranking
MIN_CANDIDATES = 64


@dataclass(frozen=True)
class Neighbours:
    rows: Rows
    scores: npt.NDArray[np.float32]


class VectorIndex:
    """A read-only view of one model's index, as its manifest describes it when opened."""

    def __init__(self, layout: Layout, manifest: IndexManifest) -> None:
        self.layout = layout
        self.manifest = manifest
        m = manifest
        files = RowFiles(layout.vector_index_rows(m.model, m.generation), m.dim)
        self.columns = files.open(m.counts)
        self.vectors: npt.NDArray[np.float32] = self.columns["vectors"]
        dead_path = layout.vector_index_dead(m.model, m.generation, m.dead_seq)
        self.dead: Rows = np.load(dead_path) if m.dead_seq else np.empty(0, dtype=np.int64)
        self.graph: Any = None
        if m.graph_seq:
            graph_path = layout.vector_index_graph(m.model, m.generation, m.graph_seq)
            self.graph = load_graph(graph_path, writable=False, params=m.params)

    @classmethod
    def open(
        cls,
        layout: Layout,
        model: ModelConfig,
        embedding: dict[str, Any] | None = None,
        *,
        expansion_search: int | None = None,
    ) -> VectorIndex:
        """The index of ``model``; SearchError when there is none or it was built for other vectors.
        ``expansion_search`` (HNSW's ef at query time, ``[search]``) overrides the build's: no rebuild needed."""
        for attempt in range(3):  # a rebuild may switch generations between reading the manifest and the files
            manifest = read_index_manifest(layout, model.alias)
            if manifest is None:
                raise SearchError(f"no vector index for model {model.alias!r}; build it with `papersys index`")
            problems = manifest.differences(model, embedding)
            if problems:
                raise SearchError(
                    f"the vector index of {model.alias!r} was built for other vectors: {'; '.join(problems)}; "
                    "rebuild it with `papersys index --rebuild`"
                )
            try:
                index = cls(layout, manifest)
            except (FileNotFoundError, StoreError):
                if attempt == 2:
                    raise
                continue
            if expansion_search is not None and index.graph is not None:
                index.graph.expansion_search = expansion_search
            return index
        raise AssertionError("unreachable")

    # rows ----------------------------------------------------------------------------------------------
    @property
    def live(self) -> int:
        return self.manifest.live

    @cached_property
    def _dead_mask(self) -> npt.NDArray[np.bool_]:
        mask = np.zeros(self.manifest.rows, dtype=bool)
        mask[self.dead] = True
        return mask

    def is_live(self, rows: Rows) -> npt.NDArray[np.bool_]:
        return ~self._dead_mask[rows]

    def row_of(self, paper_id: str) -> int | None:
        """The live row holding ``paper_id`` (an id without version), or None."""
        key = paper_id.encode()
        if len(key) > ID_BYTES:
            return None
        hits = np.flatnonzero(self.columns["ids"] == key)
        hits = hits[self.is_live(hits)]
        return int(hits[-1]) if len(hits) else None

    def ids(self, rows: Rows) -> list[str]:
        return [bytes(b).decode() for b in self.columns["ids"][rows]]

    @cached_property
    def category_offsets(self) -> Rows:
        """Start of each row's category codes in the codes file (and the end, last)."""
        offsets = np.zeros(self.manifest.rows + 1, dtype=np.int64)
        np.cumsum(self.columns["ncat"], out=offsets[1:])
        return offsets

    # search --------------------------------------------------------------------------------------------
    def search(self, query: npt.NDArray[np.float32], k: int, allowed: Rows | None = None) -> Neighbours:
        """The ``k`` live rows nearest to ``query`` (among ``allowed``, sorted, when given), exact cosine."""
        query = _unit(query)
        if allowed is not None:
            allowed = allowed[self.is_live(allowed)]
            if len(allowed) <= max(EXACT_LIMIT, k):
                return self._exact(query, allowed, k)
        wanted = self.live if allowed is None else len(allowed)
        share = max(wanted / max(self.manifest.rows, 1), 1e-9)
        count = int(max(k * OVERSAMPLE, MIN_CANDIDATES) / share)
        tail = self._exact(query, self._tail_rows(allowed), k)
        graph_rows = self.manifest.graph_rows
        while True:
            found = search_graph(self.graph, query, count) if self.graph is not None else np.empty(0, np.int64)
            found = found[self.is_live(found)] if len(found) else found
            if allowed is not None and len(found):
                found = found[_member(found, allowed)]
            if len(found) + len(tail.rows) >= k or count >= graph_rows:
                break
            count *= 4
        if len(found) + len(tail.rows) < min(k, wanted):  # the graph lost some: be exact
            return self._exact(query, self._all_live() if allowed is None else allowed, k)
        best = self._rescore(query, found, k)
        return _top(np.concatenate([best.rows, tail.rows]), np.concatenate([best.scores, tail.scores]), k)

    def _tail_rows(self, allowed: Rows | None) -> Rows:
        start = self.manifest.graph_rows
        if allowed is not None:
            return allowed[allowed >= start]
        tail = np.arange(start, self.manifest.rows, dtype=np.int64)
        return tail[self.is_live(tail)]

    def _all_live(self) -> Rows:
        return np.flatnonzero(~self._dead_mask).astype(np.int64)

    def _rescore(self, query: npt.NDArray[np.float32], rows: Rows, k: int) -> Neighbours:
        if len(rows) == 0:
            return Neighbours(np.empty(0, np.int64), np.empty(0, np.float32))
        rows = np.unique(rows)
        return _top(rows, _cosines(self.vectors[rows], query), k)

    def _exact(self, query: npt.NDArray[np.float32], rows: Rows, k: int) -> Neighbours:
        best = Neighbours(np.empty(0, np.int64), np.empty(0, np.float32))
        for start in range(0, len(rows), SCAN_CHUNK):
            chunk = rows[start : start + SCAN_CHUNK]
            scored = _top(chunk, _cosines(self.vectors[chunk], query), k)
            best = _top(np.concatenate([best.rows, scored.rows]), np.concatenate([best.scores, scored.scores]), k)
        return best


def _unit(vector: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    vector = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def _cosines(vectors: npt.NDArray[np.float32], query: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    block = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(block, axis=1)
    norms[norms == 0] = 1.0
    scores: npt.NDArray[np.float32] = (block @ query / norms).astype(np.float32)
    return scores


def _top(rows: Rows, scores: npt.NDArray[np.float32], k: int) -> Neighbours:
    if len(rows) > k:
        pick = np.argpartition(-scores, k - 1)[:k]
        rows, scores = rows[pick], scores[pick]
    order = np.lexsort((rows, -scores))  # best first; ties broken by row for a stable order
    return Neighbours(rows[order], scores[order])


def _member(rows: Rows, allowed: Rows) -> npt.NDArray[np.bool_]:
    """Which of ``rows`` are in the sorted array ``allowed``."""
    at = np.searchsorted(allowed, rows)
    at[at == len(allowed)] = 0
    return allowed[at] == rows if len(allowed) else np.zeros(len(rows), dtype=bool)
