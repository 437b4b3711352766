"""What a query returns: papers, scored hits and the result object of DESIGN §9 (CLI --json, API, MCP)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from papersys.search.filters import Filters

ABS_URL = "https://arxiv.org/abs/"


@dataclass(frozen=True)
class Paper:
    id: str
    title: str
    abstract: str
    authors: tuple[str, ...]
    categories: tuple[str, ...]
    primary_category: str
    created: date | None
    updated: date | None
    doi: str | None = None
    journal_ref: str | None = None
    comments: str | None = None
    license: str | None = None

    @property
    def url(self) -> str:
        return ABS_URL + self.id

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "authors": list(self.authors),
            "categories": list(self.categories),
            "primary_category": self.primary_category,
            "created": self.created.isoformat() if self.created else None,
            "updated": self.updated.isoformat() if self.updated else None,
            "abstract": self.abstract,
            "doi": self.doi,
            "journal_ref": self.journal_ref,
            "comments": self.comments,
            "license": self.license,
            "url": self.url,
        }

    def summary(self) -> list[str]:
        lines = [f"{self.id}  {self.title}", f"  {authors_line(self.authors, limit=10)}"]
        lines.append(f"  {' '.join(self.categories)}  created {self.created}  updated {self.updated or '-'}")
        lines += [f"  {self.url}", "", self.abstract]
        return lines


@dataclass(frozen=True)
class Hit:
    paper: Paper
    score: float

    def to_dict(self) -> dict[str, Any]:
        data = self.paper.to_dict()
        return {
            "id": data["id"],
            "score": round(self.score, 6),
            **{key: data[key] for key in RESULT_FIELDS},
        }


RESULT_FIELDS = ("title", "authors", "categories", "primary_category", "created", "updated", "abstract", "url")


@dataclass(frozen=True)
class SearchResult:
    """One query's answer: the top ``k`` papers, best first, with exact cosine scores."""

    model: str
    mode: str
    query: str  # the query text, or for `similar` the paper id
    k: int
    filters: Filters
    took_ms: float
    hits: tuple[Hit, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "mode": self.mode,
            "query": self.query,
            "k": self.k,
            "filters": self.filters.to_dict(),
            "took_ms": round(self.took_ms, 2),
            "results": [hit.to_dict() for hit in self.hits],
        }

    def summary(self) -> list[str]:
        if not self.hits:
            return [f"no papers found ({self.model}, {self.mode})"]
        return [
            f"{rank:>3}  {hit.score:.4f}  {hit.paper.id:<16}  {hit.paper.created or ''!s:<10}  "
            f"{hit.paper.primary_category:<10}  {hit.paper.title}  — {authors_line(hit.paper.authors)}"
            for rank, hit in enumerate(self.hits, start=1)
        ]


def authors_line(authors: tuple[str, ...], limit: int = 3) -> str:
    if len(authors) <= limit:
        return ", ".join(authors)
    return ", ".join(authors[:limit]) + f" et al. ({len(authors)})"
