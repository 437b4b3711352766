"""Small builders of metadata rows/frames for tests (schema-complete, override what matters)."""

from __future__ import annotations

from datetime import date
from typing import Any

import polars as pl

from papersys.store.metadata import conform, empty_metadata


def row(arxiv_id: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": arxiv_id,
        "title": f"Title of {arxiv_id}",
        "abstract": f"Abstract of {arxiv_id}.",
        "authors": ["Ada Lovelace"],
        "categories": ["cs.LG"],
        "primary_category": "cs.LG",
        "created": date(2024, 1, 1),
        "updated": None,
        "doi": None,
        "journal_ref": None,
        "comments": None,
        "license": None,
        "datestamp": date(2024, 1, 2),
        "source": "oai",
    }
    base.update(fields)
    if "categories" in fields and "primary_category" not in fields:
        base["primary_category"] = fields["categories"][0]
    return base


def frame(*rows: dict[str, Any]) -> pl.DataFrame:
    if not rows:
        return empty_metadata()
    return conform(pl.DataFrame(list(rows), schema_overrides={"updated": pl.Date()}, strict=False))
