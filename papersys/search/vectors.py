"""Reading a vector index: approximate candidates from the ANN index and the tail, exact cosine from the rows.

Scores are exact: candidates from the 8-bit IVF index (plus an exact scan of the rows added since it was
last merged) are re-scored with the float32 row vectors. A filtered query scans the matching rows exactly
when they are few; otherwise the IVF scan skips rows outside the filter (a bitmap selector) and scans more
lists until k matches are found (falling back to an exact scan), so it returns k results whenever k
papers match. Row vectors are read from a memory map whose pages are released after each read, so a
long-lived searcher does not accumulate the 4.6 GB of float32 vectors of 3 M papers in its resident set.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from papersys.config import ModelConfig
from papersys.errors import SearchError, StoreError
from papersys.search import ann as ann_set
from papersys.search.manifest import IndexManifest, read_index_manifest
from papersys.search.rows import ID_BYTES, RowFiles
from papersys.store.layout import Layout

Rows = npt.NDArray[np.int64]
EXACT_LIMIT = 4_096  # a filter matching at most this many rows is answered by an exact scan
SCAN_CHUNK = 4_096  # rows scored at a time in an exact scan (bounded memory, pages released after each)
OVERSAMPLE = 4  # ANN candidates per wanted result before re-ranking
MIN_CANDIDATES = 64
MORE_PROBES = 4  # too few filtered candidates: scan this many times more lists


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
        self.probes = m.params.probes
        self.ann: Any = None
        if m.ann_seq:
            self.ann = ann_set.load(layout.vector_index_ann(m.model, m.generation, m.ann_seq), writable=False)

    @classmethod
    def open(
        cls,
        layout: Layout,
        model: ModelConfig,
        embedding: dict[str, Any] | None = None,
        *,
        probes: int | None = None,
    ) -> VectorIndex:
        """The index of ``model``; SearchError when there is none or it was built for other vectors.
        ``probes`` (IVF lists scanned per query, ``[search]``) overrides the build's: no rebuild needed."""
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
            if probes is not None:
                index.probes = probes
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
        tail = self._tail(query, allowed, k)
        found = self._candidates(query, max(k * OVERSAMPLE, MIN_CANDIDATES), k - len(tail.rows), allowed)
        if len(found) + len(tail.rows) < min(k, wanted):  # the ANN index lost some: be exact
            return self._exact(query, self._all_live() if allowed is None else allowed, k)
        best = self._rescore(query, found, k)
        return _top(np.concatenate([best.rows, tail.rows]), np.concatenate([best.scores, tail.scores]), k)

    def _candidates(self, query: npt.NDArray[np.float32], count: int, need: int, allowed: Rows | None) -> Rows:
        """Up to ``count`` live rows of the ANN index near ``query`` (within ``allowed``), scanning more lists
        while fewer than ``need`` turn up."""
        if self.ann is None:
            return np.empty(0, dtype=np.int64)
        bitmap = self._live_bitmap if allowed is None else self._bitmap(allowed)
        probes, lists = self.probes, ann_set.list_count(self.ann)
        while True:
            found = ann_set.search(self.ann, query, count, probes=probes, allowed=bitmap)
            if len(found) >= need or probes >= lists:
                return found
            probes *= MORE_PROBES

    @cached_property
    def _live_bitmap(self) -> npt.NDArray[np.uint8] | None:
        """Live rows of the ANN index as a bitmap (None when none is dead: no selector needed)."""
        if not len(self.dead) or not self.dead.min() < self.manifest.ann_rows:
            return None
        return np.packbits(~self._dead_mask[: self.manifest.ann_rows], bitorder="little")

    def _bitmap(self, rows: Rows) -> npt.NDArray[np.uint8]:
        mask = np.zeros(self.manifest.ann_rows, dtype=bool)
        mask[rows[rows < self.manifest.ann_rows]] = True
        return np.packbits(mask, bitorder="little")

    def _tail(self, query: npt.NDArray[np.float32], allowed: Rows | None, k: int) -> Neighbours:
        """The best ``k`` of the rows added since the ANN index was merged (live, within ``allowed``): one
        contiguous block of at most ``tail_rows`` rows, scored in place and left mapped, since every
        query reads it."""
        start, end = self.manifest.ann_rows, self.manifest.rows
        rows = np.arange(start, end, dtype=np.int64)
        keep = self.is_live(rows) if allowed is None else _member(rows, allowed)
        if not keep.any():
            return Neighbours(np.empty(0, np.int64), np.empty(0, np.float32))
        return _top(rows[keep], _cosines(self.vectors[start:end], query)[keep], k)

    def _all_live(self) -> Rows:
        return np.flatnonzero(~self._dead_mask).astype(np.int64)

    def _rescore(self, query: npt.NDArray[np.float32], rows: Rows, k: int) -> Neighbours:
        if len(rows) == 0:
            return Neighbours(np.empty(0, np.int64), np.empty(0, np.float32))
        rows = np.unique(rows)
        return _top(rows, _cosines(self.read_vectors(rows), query), k)

    def _exact(self, query: npt.NDArray[np.float32], rows: Rows, k: int) -> Neighbours:
        best = Neighbours(np.empty(0, np.int64), np.empty(0, np.float32))
        for start in range(0, len(rows), SCAN_CHUNK):
            chunk = rows[start : start + SCAN_CHUNK]
            scored = _top(chunk, _cosines(self.read_vectors(chunk), query), k)
            best = _top(np.concatenate([best.rows, scored.rows]), np.concatenate([best.scores, scored.scores]), k)
        return best

    def read_vectors(self, rows: Rows) -> npt.NDArray[np.float32]:
        """The float32 vectors of ``rows`` (sorted), copied out of the memory map, whose pages are then
        released from this process (the page cache keeps them): resident memory stays flat over many
        queries instead of growing towards the size of the vectors file."""
        block = np.array(self.vectors[rows], dtype=np.float32)
        mapping = getattr(self.vectors, "_mmap", None)
        if mapping is not None and len(rows) and hasattr(mmap, "MADV_DONTNEED"):
            width = self.vectors.shape[1] * self.vectors.dtype.itemsize
            low = int(rows.min()) * width // mmap.PAGESIZE * mmap.PAGESIZE
            mapping.madvise(mmap.MADV_DONTNEED, low, (int(rows.max()) + 1) * width - low)
        return block


def _unit(vector: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    vector = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def _cosines(vectors: npt.NDArray[np.float32], query: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    block = np.asarray(vectors, dtype=np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", block, block))
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
