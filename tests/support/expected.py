"""The metadata row the store must hold for a synthetic ``Paper`` — the spec of DESIGN §2, written out
independently of the parser so harvest tests compare against it field by field."""

from __future__ import annotations

from typing import Any

from support.oai_records import Paper


def _clean(text: str | None) -> str | None:
    if text is None:
        return None
    return " ".join(text.split()) or None


def expected_row(paper: Paper, *, source: str = "oai") -> dict[str, Any]:
    return {
        "id": paper.id,
        "title": _clean(paper.title),
        "abstract": _clean(paper.abstract),
        "authors": [" ".join(p for p in (fore, key, suffix) if p) for key, fore, suffix in paper.authors],
        "categories": list(dict.fromkeys(paper.categories)),
        "primary_category": paper.categories[0],
        "created": paper.created,
        "updated": paper.updated,
        "doi": _clean(paper.doi),
        "journal_ref": _clean(paper.journal_ref),
        "comments": _clean(paper.comments),
        "license": _clean(paper.license),
        "datestamp": paper.datestamp,
        "source": source,
    }
