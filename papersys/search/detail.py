"""One paper with the models that have a vector for it, and the indexes' state for a health check."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from papersys.config import Config
from papersys.errors import PapersysError
from papersys.search.manifest import read_index_manifest
from papersys.search.results import Paper
from papersys.search.text_index import TextIndex
from papersys.store.layout import Layout

if TYPE_CHECKING:
    from papersys.search.query import Searcher


@dataclass(frozen=True)
class PaperDetail:
    """A stored paper and the aliases of the configured models whose vector index holds a vector for it."""

    paper: Paper
    models: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {**self.paper.to_dict(), "models": list(self.models)}

    def summary(self) -> list[str]:
        return [*self.paper.summary(), "", f"vectors: {', '.join(self.models) or 'none indexed'}"]


def paper_detail(searcher: Searcher, config: Config, raw_id: str) -> PaperDetail:
    paper = searcher.paper(raw_id)  # UsageError for a malformed id, SearchError for an unknown one
    models = []
    for model in config.embedding.models:
        try:
            index = searcher.index(model)
        except PapersysError:  # no index (yet) for this model: no vector to show
            continue
        if index.row_of(paper.id) is not None:
            models.append(model.alias)
    return PaperDetail(paper, tuple(models))


@dataclass(frozen=True)
class IndexHealth:
    """What a health check reports: per model the papers its vector index holds (None: no index), and
    whether the full-text index exists. Reads manifests only."""

    models: dict[str, int | None] = field(default_factory=dict)
    text_index: bool = False
    problems: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "indexes": {alias: {"indexed": n} for alias, n in self.models.items()},
            "text_index": self.text_index,
            "problems": list(self.problems),
        }

    def summary(self) -> list[str]:
        lines = [f"index {alias}: {'none' if n is None else f'{n:,} papers'}" for alias, n in self.models.items()]
        return [*lines, f"full-text index: {'yes' if self.text_index else 'none'}", *self.problems]


def index_health(config: Config) -> IndexHealth:
    layout = Layout(config.data_dir)
    models: dict[str, int | None] = {}
    problems = []
    for model in config.embedding.models:
        try:
            manifest = read_index_manifest(layout, model.alias)
        except PapersysError as exc:  # a damaged manifest: reported, the check still answers
            problems.append(str(exc))
            manifest = None
        models[model.alias] = None if manifest is None else manifest.live
    return IndexHealth(models, TextIndex.exists(layout), tuple(problems))
