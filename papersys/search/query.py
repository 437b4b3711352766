"""Answering queries: check the input, embed the query, plan the filtered search, attach the papers.

A ``Searcher`` keeps opened indexes and query encoders between queries (the Library, the daemon); a
one-shot CLI query makes one and drops it. It reopens an index when its manifest changed on disk. It is
safe to share between threads (the HTTP API's worker pool): a lock guards its caches.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt

from papersys.config import Config, ModelConfig
from papersys.errors import PapersysError, SearchError, UsageError
from papersys.search import keyword
from papersys.search.filters import Filters, check_k
from papersys.search.papers import load_papers, paper_id
from papersys.search.results import Hit, Paper, SearchResult
from papersys.search.text_index import TextIndex
from papersys.search.vectors import VectorIndex
from papersys.store.layout import Layout

log = logging.getLogger(__name__)
HYBRID, SEMANTIC, KEYWORD = "hybrid", "semantic", "keyword"
MODES = (HYBRID, SEMANTIC, KEYWORD)
MAX_QUERY_CHARS = 10_000


@dataclass(frozen=True)
class QueryOptions:
    """A query's options as a user gave them (CLI, Library, HTTP, MCP); ``Query.of`` checks them."""

    k: int = 10
    categories: Sequence[str] = ()
    since: date | str | None = None
    until: date | str | None = None
    model: str | None = None
    mode: str | None = None  # None: hybrid when both indexes exist, else the one that does


@dataclass(frozen=True)
class Query:
    """A checked query: which model, how many results, which papers may match, how to rank."""

    model: ModelConfig
    k: int
    filters: Filters
    mode: str | None = None

    @classmethod
    def of(cls, config: Config, options: QueryOptions) -> Query:
        if options.mode is not None and options.mode not in MODES:
            raise UsageError(f"unknown search mode {options.mode!r} (choose from {', '.join(MODES)})")
        chosen = config.model(options.model) if options.model else _default_model(config)
        filters = Filters.of(options.categories, options.since, options.until)
        return cls(chosen, check_k(options.k), filters, options.mode)


class Searcher:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.layout = Layout(config.data_dir)
        self._indexes: dict[str, tuple[Any, VectorIndex]] = {}
        self._text: tuple[Any, TextIndex] | None = None
        self._encoders: dict[str, Any] = {}
        # one opening at a time: concurrent queries after a swap open the new index once, not once each
        self._lock = threading.RLock()

    def index(self, model: ModelConfig) -> VectorIndex:
        """The model's index, reopened when an update has written a new manifest since it was opened."""
        stamp = _stamp(self.layout.vector_index_manifest(model.alias))
        with self._lock:
            cached = self._indexes.get(model.alias)
            if cached is None or cached[0] != stamp:
                probes = self.config.search.probes
                self._indexes[model.alias] = (stamp, VectorIndex.open(self.layout, model, probes=probes))
            return self._indexes[model.alias][1]

    def text_index(self) -> TextIndex:
        """The full-text index, reopened when an update has written a new manifest since it was opened."""
        stamp = _stamp(self.layout.text_index_manifest)
        with self._lock:
            if self._text is None or self._text[0] != stamp:
                self._text = (stamp, TextIndex.open(self.layout))
            return self._text[1]

    def encoder(self, model: ModelConfig) -> Any:
        with self._lock:
            if model.alias not in self._encoders:
                from papersys.search.encoder import query_encoder

                self._encoders[model.alias] = query_encoder(model, self.layout.query_encoder_dir(model.alias))
            return self._encoders[model.alias]

    def mode(self, query: Query) -> str:
        """The mode asked for, or the best the indexes on disk allow."""
        if query.mode is not None:
            return query.mode
        has_vectors = self.layout.vector_index_manifest(query.model.alias).is_file()
        if TextIndex.exists(self.layout):
            return HYBRID if has_vectors else KEYWORD
        return SEMANTIC  # a missing vector index is then reported by the semantic search itself

    # verbs ---------------------------------------------------------------------------------------------
    def search(self, text: str, query: Query) -> SearchResult:
        text = text.strip()
        if not text:
            raise UsageError("the query is empty")
        if len(text) > MAX_QUERY_CHARS:
            raise UsageError(f"the query has {len(text):,} characters; at most {MAX_QUERY_CHARS:,} are allowed")
        began = time.perf_counter()
        mode = self.mode(query)
        if mode == SEMANTIC:  # the text as typed, no syntax (but an id alone is still a lookup)
            parsed = keyword.KeywordQuery(words=text, lookup=keyword.lookup_id(text))
        else:
            parsed = keyword.parse(text)
        if parsed.lookup is not None:
            hits = self._lookup(parsed.lookup, query, mode)
        elif mode == SEMANTIC:
            index = self.index(query.model)  # before the encoder: a missing index is the cheaper error
            hits = self._neighbours(index, self._embed(query.model, text), query, exclude=None)
        else:
            filters = keyword.with_categories(query.filters, parsed)
            hits = self._ranked(parsed, replace(query, filters=filters), mode)
        return SearchResult(query.model.alias, mode, text, query.k, query.filters, _ms(began), hits)

    def similar(self, raw_id: str, query: Query) -> SearchResult:
        began = time.perf_counter()
        arxiv_id = _checked_id(raw_id)
        hits = self._neighbours_of(arxiv_id, query)
        return SearchResult(query.model.alias, SEMANTIC, arxiv_id, query.k, query.filters, _ms(began), hits)

    def paper(self, raw_id: str) -> Paper:
        arxiv_id = _checked_id(raw_id)
        found = self._load_papers([arxiv_id]).get(arxiv_id)
        if found is None:
            raise SearchError(f"paper {arxiv_id} is not in the store")
        return found

    # the parts -----------------------------------------------------------------------------------------
    def _embed(self, model: ModelConfig, text: str) -> npt.NDArray[np.float32]:
        vectors: npt.NDArray[np.float32] = np.asarray(self.encoder(model).embed([text]), dtype=np.float32)
        return np.asarray(vectors[0], dtype=np.float32)

    def _lookup(self, arxiv_id: str, query: Query, mode: str) -> tuple[Hit, ...]:
        """A query that is one paper's id: that paper first (when the filters admit it), then its nearest
        neighbours when the model has a vector for it (keyword mode: the paper alone)."""
        paper = self.paper(arxiv_id)
        first = [Hit(paper, 1.0)] if query.filters.matches(paper.categories, paper.created) else []
        if mode == KEYWORD or query.k == len(first):
            return tuple(first)
        try:
            rest = self._neighbours_of(arxiv_id, replace(query, k=query.k - len(first)))
        except SearchError:  # no vector index, or no vector for this paper: the paper alone
            rest = ()
        return tuple(first) + rest

    def _neighbours_of(self, arxiv_id: str, query: Query) -> tuple[Hit, ...]:
        index = self.index(query.model)
        row = index.row_of(arxiv_id)
        if row is None:
            if arxiv_id not in self._load_papers([arxiv_id]):
                raise SearchError(f"paper {arxiv_id} is not in the store")
            raise SearchError(
                f"paper {arxiv_id} has no vector in the index of {query.model.alias!r} "
                "(embed it with `papersys embed autopatch`)"
            )
        vector = index.read_vectors(np.asarray([row], dtype=np.int64))[0]
        return self._neighbours(index, vector, query, exclude=arxiv_id)

    def _ranked(self, parsed: keyword.KeywordQuery, query: Query, mode: str) -> tuple[Hit, ...]:
        """Keyword or hybrid: BM25 candidates, fused with the vector side's in hybrid mode."""
        texts = self.text_index()
        settings = self.config.search
        name = keyword.as_name(parsed) if mode == HYBRID else None
        if name is not None and texts.top(name[1], 1):  # a bare author name: meaning has nothing to add
            parsed = name[0]
        bm25 = keyword.bm25_query(parsed, query.filters, texts.share)
        if bm25 is None and (mode == KEYWORD or not parsed.semantic_text):
            raise UsageError("the query has no searchable words")
        if mode == KEYWORD or not parsed.semantic_text:
            return self._papers(lambda n: texts.ranked(bm25, n), query)
        depth = max(settings.hybrid_depth, query.k)
        lists = [[i for i, _ in texts.ranked(bm25, depth)], self._semantic_ids(parsed, query, depth)]
        fused = rrf(lists, settings.rrf_k, weights=(settings.keyword_weight, 1.0))
        return self._papers(lambda n: fused[:n], query)

    def _semantic_ids(self, parsed: keyword.KeywordQuery, query: Query, depth: int) -> list[str]:
        index = self.index(query.model)
        found = index.search(self._embed(query.model, parsed.semantic_text), depth, query.filters.rows(index))
        ids = index.ids(found.rows)
        if parsed.constrained:  # phrases, authors, ids: only candidates that satisfy them
            keep = self.text_index().matching(ids, keyword.constraint_query(parsed, query.filters))
            ids = [i for i in ids if i in keep]
        return ids

    def _papers(self, ranked: Callable[[int], list[tuple[str, float]]], query: Query) -> tuple[Hit, ...]:
        """The first k of a ranking whose papers are still stored (the index may lag the store)."""
        want = query.k
        for _ in range(4):
            candidates = ranked(want)
            papers = self._load_papers([i for i, _ in candidates])
            hits = [
                Hit(papers[i], score)
                for i, score in candidates
                if i in papers and query.filters.matches(papers[i].categories, papers[i].created)
            ]
            if len(hits) >= query.k or len(candidates) < want:
                break
            want = want * 2 + query.k
        return tuple(hits[: query.k])

    def _load_papers(self, ids: list[str]) -> dict[str, Paper]:
        """Papers by id: from the full-text index's stored records while it is current with every metadata
        year file (a term lookup each), else from the year files (tens of milliseconds at 3 M papers)."""
        if TextIndex.exists(self.layout):
            try:
                texts = self.text_index()
            except PapersysError as exc:  # unreadable or an older schema: the year files answer
                log.debug("full-text index not used for papers: %s", exc)
            else:
                if texts.current(self.layout):
                    return texts.papers(ids)
        return load_papers(self.layout, ids)

    def _neighbours(self, index: VectorIndex, vector: Any, query: Query, exclude: str | None) -> tuple[Hit, ...]:
        """The top k papers: neighbours whose metadata still exists and still passes the filters."""
        allowed = query.filters.rows(index)
        extra = 1 if exclude else 0
        want = query.k + extra
        for _ in range(4):  # papers deleted since the index was updated are skipped; ask for more then
            found = index.search(vector, want, allowed)
            ids = index.ids(found.rows)
            papers = self._load_papers(ids)
            hits = [
                Hit(papers[i], float(score))
                for i, score in zip(ids, found.scores, strict=True)
                if i in papers and i != exclude and query.filters.matches(papers[i].categories, papers[i].created)
            ]
            if len(hits) >= query.k or len(found.rows) < want:
                break
            want = want * 2 + query.k
        return tuple(hits[: query.k])


def rrf(
    lists: Sequence[Sequence[str]], constant: int, weights: Sequence[float] | None = None
) -> list[tuple[str, float]]:
    """Weighted reciprocal-rank fusion: each id scores the sum of weight / (constant + rank) over the lists
    holding it (rank from 1; weight 1 unless given per list); best first, ties broken by the first list's
    order."""
    scores: dict[str, float] = {}
    for ranking, weight in zip(lists, weights or [1.0] * len(lists), strict=True):
        for rank, arxiv_id in enumerate(ranking, start=1):
            scores[arxiv_id] = scores.get(arxiv_id, 0.0) + weight / (constant + rank)
    return sorted(scores.items(), key=lambda item: -item[1])


def _stamp(path: Any) -> Any:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


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
