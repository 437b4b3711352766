"""Answering queries: check the input, embed the query, plan the filtered search, attach the papers.

A ``Searcher`` keeps opened indexes and query encoders between queries (the Library, the daemon); a
one-shot CLI query makes one and drops it. It reopens an index when its manifest changed on disk.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np

from papersys.config import Config, ModelConfig
from papersys.errors import SearchError, UsageError
from papersys.search.filters import Filters, check_k
from papersys.search.papers import load_papers, paper_id
from papersys.search.results import Hit, Paper, SearchResult
from papersys.search.vectors import VectorIndex
from papersys.store.layout import Layout

log = logging.getLogger(__name__)
SEMANTIC = "semantic"
MAX_QUERY_CHARS = 10_000


@dataclass(frozen=True)
class Query:
    """A checked query: which model, how many results, which papers may match."""

    model: ModelConfig
    k: int
    filters: Filters

    @classmethod
    def of(
        cls,
        config: Config,
        *,
        k: int,
        categories: Sequence[str] = (),
        since: date | str | None = None,
        until: date | str | None = None,
        model: str | None = None,
    ) -> Query:
        chosen = config.model(model) if model else _default_model(config)
        return cls(chosen, check_k(k), Filters.of(categories, since, until))


class Searcher:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.layout = Layout(config.data_dir)
        self._indexes: dict[str, tuple[Any, VectorIndex]] = {}
        self._encoders: dict[str, Any] = {}

    def index(self, model: ModelConfig) -> VectorIndex:
        """The model's index, reopened when an update has written a new manifest since it was opened."""
        path = self.layout.vector_index_manifest(model.alias)
        try:
            stamp: Any = path.stat().st_mtime_ns
        except FileNotFoundError:
            stamp = None
        cached = self._indexes.get(model.alias)
        if cached is None or cached[0] != stamp:
            self._indexes[model.alias] = (stamp, VectorIndex.open(self.layout, model))
        return self._indexes[model.alias][1]

    def encoder(self, model: ModelConfig) -> Any:
        if model.alias not in self._encoders:
            from papersys.search.encoder import query_encoder

            self._encoders[model.alias] = query_encoder(model, self.layout.query_encoder_dir(model.alias))
        return self._encoders[model.alias]

    # verbs ---------------------------------------------------------------------------------------------
    def search(self, text: str, query: Query) -> SearchResult:
        text = text.strip()
        if not text:
            raise UsageError("the query is empty")
        if len(text) > MAX_QUERY_CHARS:
            raise UsageError(f"the query has {len(text):,} characters; at most {MAX_QUERY_CHARS:,} are allowed")
        began = time.perf_counter()
        index = self.index(query.model)  # before the encoder: a missing index is the cheaper error
        vector = np.asarray(self.encoder(query.model).embed([text]), dtype=np.float32)[0]
        hits = self._neighbours(index, vector, query, exclude=None)
        return SearchResult(query.model.alias, SEMANTIC, text, query.k, query.filters, _ms(began), hits)

    def similar(self, raw_id: str, query: Query) -> SearchResult:
        began = time.perf_counter()
        arxiv_id = _checked_id(raw_id)
        index = self.index(query.model)
        row = index.row_of(arxiv_id)
        if row is None:
            if arxiv_id not in load_papers(self.layout, [arxiv_id]):
                raise SearchError(f"paper {arxiv_id} is not in the store")
            raise SearchError(
                f"paper {arxiv_id} has no vector in the index of {query.model.alias!r} "
                "(embed it with `papersys embed autopatch`)"
            )
        vector = np.asarray(index.vectors[row], dtype=np.float32)
        hits = self._neighbours(index, vector, query, exclude=arxiv_id)
        return SearchResult(query.model.alias, SEMANTIC, arxiv_id, query.k, query.filters, _ms(began), hits)

    def paper(self, raw_id: str) -> Paper:
        arxiv_id = _checked_id(raw_id)
        found = load_papers(self.layout, [arxiv_id]).get(arxiv_id)
        if found is None:
            raise SearchError(f"paper {arxiv_id} is not in the store")
        return found

    def _neighbours(self, index: VectorIndex, vector: Any, query: Query, exclude: str | None) -> tuple[Hit, ...]:
        """The top k papers: neighbours whose metadata still exists and still passes the filters."""
        allowed = query.filters.rows(index)
        extra = 1 if exclude else 0
        want = query.k + extra
        for _ in range(4):  # papers deleted since the index was updated are skipped; ask for more then
            found = index.search(vector, want, allowed)
            ids = index.ids(found.rows)
            papers = load_papers(self.layout, ids)
            hits = [
                Hit(papers[i], float(score))
                for i, score in zip(ids, found.scores, strict=True)
                if i in papers and i != exclude and query.filters.matches(papers[i].categories, papers[i].created)
            ]
            if len(hits) >= query.k or len(found.rows) < want:
                break
            want = want * 2 + query.k
        return tuple(hits[: query.k])


def _default_model(config: Config) -> ModelConfig:
    enabled = [m for m in config.embedding.models if m.enabled] or list(config.embedding.models)
    if not enabled:
        raise UsageError("no embedding model is configured")
    return enabled[0]


def _checked_id(raw: str) -> str:
    try:
        return paper_id(raw)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _ms(began: float) -> float:
    return (time.perf_counter() - began) * 1000
