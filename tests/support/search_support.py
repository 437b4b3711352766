"""Helpers for the search tests: a config with [search] overrides, metadata rows from the real papers."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from papersys.config import Config, config_from_mapping
from support.builders import row


def make_config(root: Path, **search: int) -> Config:
    return config_from_mapping({"data_dir": "data", "search": search}, base_dir=root)


def paper_rows(papers: pl.DataFrame) -> list[dict[str, object]]:
    return [
        row(
            p["id"],
            title=p["title"],
            abstract=p["abstract"],
            authors=p["authors"],
            categories=p["categories"],
            created=p["created"],
            updated=p["updated"],
        )
        for p in papers.iter_rows(named=True)
    ]


# DESIGN §9's result object: its keys, and each result's
RESULT_KEYS = {"model", "mode", "query", "k", "filters", "took_ms", "results"}
HIT_KEYS = {
    "id",
    "score",
    "title",
    "authors",
    "categories",
    "primary_category",
    "created",
    "updated",
    "abstract",
    "url",
}
