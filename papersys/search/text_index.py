"""Reading the full-text index: the generation its manifest names, BM25 top lists, constraint checks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from papersys.errors import SearchError, StoreError
from papersys.search import text
from papersys.search.text_build import TextManifest, read_text_manifest
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

    def matching(self, ids: Sequence[str], constraint: Any) -> set[str]:
        """The papers among ``ids`` that satisfy ``constraint``."""
        if not ids:
            return set()
        query = text.boolean([(text.Occur.Must, constraint), (text.Occur.Must, text.any_term(text.ID, list(ids)))])
        return {arxiv_id for arxiv_id, _ in text.top(self._searcher, query, len(ids))}
