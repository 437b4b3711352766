"""The JSON shapes of the API, for its OpenAPI description only: the routes send the reports' own
``to_dict()`` (so the API says exactly what the CLI's --json says); a test keeps these in step with it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ResultFilters(BaseModel):
    categories: list[str]
    since: str | None = Field(description="YYYY-MM-DD")
    until: str | None = Field(description="YYYY-MM-DD")


class Hit(BaseModel):
    id: str
    score: float = Field(description="cosine (semantic), BM25 (keyword) or the fused rank score (hybrid)")
    title: str
    authors: list[str]
    categories: list[str]
    primary_category: str
    created: str | None = Field(description="first version, YYYY-MM-DD")
    updated: str | None
    abstract: str
    url: str = Field(description="https://arxiv.org/abs/<id>")


class SearchResult(BaseModel):
    """DESIGN §9's result object."""

    model: str
    mode: str = Field(description="hybrid | semantic | keyword")
    query: str = Field(description="the query text, or for /api/similar the paper id")
    k: int
    filters: ResultFilters
    took_ms: float
    results: list[Hit]


class PaperDetail(BaseModel):
    id: str
    title: str
    authors: list[str]
    categories: list[str]
    primary_category: str
    created: str | None
    updated: str | None
    abstract: str
    doi: str | None
    journal_ref: str | None
    comments: str | None
    license: str | None
    url: str
    models: list[str] = Field(description="aliases of the models whose vector index holds a vector for it")


class Health(BaseModel):
    status: str
    indexes: dict[str, dict[str, int | None]]
    text_index: bool
    problems: list[str]


class Error(BaseModel):
    error: str = Field(description="one line")
    detail: Any = Field(description="for 422: a list of {loc, msg}; else null")


def responses(ok: type[BaseModel] | None, *errors: int) -> dict[int | str, dict[str, Any]]:
    """FastAPI ``responses=``: the 200 shape and the error statuses a route can answer."""
    out: dict[int | str, dict[str, Any]] = {status: {"model": Error} for status in (*errors, 422)}
    if ok is not None:
        out[200] = {"model": ok}
    return out
