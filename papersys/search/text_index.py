"""Reading the full-text index: the generation its manifest names, BM25 top lists, constraint checks, and
the papers it stores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from papersys.errors import SearchError, StoreError
from papersys.search import text
from papersys.search.keyword import RERANK_DEPTH, Bm25
from papersys.search.papers import paper_from_record
from papersys.search.results import Paper
from papersys.search.text_build import TextManifest, changed_years, metadata_signature, read_text_manifest
from papersys.store.layout import Layout


class TextIndex:
    def __init__(self, manifest: TextManifest, index: Any) -> None:
        self.manifest = manifest
        self._index = index
        self._searcher = index.searcher()

    @classmethod
    def exists(cls, layout: Layout) -> bool:
        return layout.text_index_manifest.is_file()

    @classmethod
    def open(cls, layout: Layout) -> TextIndex:
        """The index in use; SearchError when there is none, StoreError when it cannot be read."""
        manifest = read_text_manifest(layout)
        if manifest is None:
            raise SearchError("there is no full-text index yet: run `papersys index --text`")
        if manifest.schema_version != text.SCHEMA_VERSION:
            raise StoreError(
                layout.text_index_manifest,
                f"was built with schema version {manifest.schema_version}, this papersys reads {text.SCHEMA_VERSION}",
                "run `papersys index --text --rebuild`",
            )
        return cls(manifest, text.open_index(layout.text_index_generation(manifest.generation)))

    @property
    def count(self) -> int:
        return text.count(self._searcher)

    def top(self, query: Any, limit: int) -> list[tuple[str, float]]:
        """Ids and BM25 scores of the ``limit`` best matches of ``query`` (a ``search.keyword`` query)."""
        if query is None:
            return []
        return text.top(self._searcher, query, limit)

    def ranked(self, bm25: Bm25 | None, limit: int) -> list[tuple[str, float]]:
        """The ``limit`` best papers of a keyword query: straight from its query, or by re-ranking the best
        ``RERANK_DEPTH`` candidates of its term unions with the whole query."""
        if bm25 is None:
            return []
        if not bm25.candidates:
            return self.top(bm25.query, limit)
        depth = max(limit, RERANK_DEPTH)
        for candidates in bm25.candidates:  # the narrowest first; the next when it finds too few
            ids = [arxiv_id for arxiv_id, _ in self.top(candidates, depth)]
            if len(ids) >= depth:
                break
        if not ids:
            return []
        among = text.constant(text.any_term(text.ID, ids))
        return self.top(text.boolean([(text.Occur.Must, among), (text.Occur.Must, bm25.query)]), limit)

    def share(self, token: str) -> float:
        """The share of the documents whose abstract holds the analysed word ``token``."""
        return int(self._searcher.doc_freq(text.ABSTRACT, token)) / max(1, self.count)

    def current(self, layout: Layout) -> bool:
        """Whether the index reflects every metadata year file as it is now (then its stored papers are the
        store's papers)."""
        return not changed_years(self.manifest.signature, metadata_signature(layout))

    def papers(self, ids: Sequence[str]) -> dict[str, Paper]:
        """The stored papers among ``ids``, by id (a term lookup each, no year file read)."""
        return {i: paper_from_record(i, raw) for i, raw in text.stored_papers(self._searcher, list(ids)).items()}

    def matching(self, ids: Sequence[str], constraint: Any) -> set[str]:
        """The papers among ``ids`` that satisfy ``constraint``."""
        if not ids:
            return set()
        query = text.boolean([(text.Occur.Must, constraint), (text.Occur.Must, text.any_term(text.ID, list(ids)))])
        return {arxiv_id for arxiv_id, _ in text.top(self._searcher, query, len(ids))}
