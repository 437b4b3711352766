"""The metadata row the store must hold for a synthetic ``Paper`` — the spec of DESIGN §2, written out
independently of the parser so harvest tests compare against it field by field."""

from __future__ import annotations

import calendar
import re
from datetime import date
from typing import Any

from support.oai_records import Paper

_YYMM = re.compile(r"(?:^|/)(\d{2})(\d{2})")


def first_version_bound(arxiv_id: str, created: date | None) -> date | None:
    """``created`` no later than the last day of the id's month (data-formats.md: a first version is never
    dated after the month its id was assigned in). Written independently of papersys's polars rule."""
    match = _YYMM.search(arxiv_id)
    if created is None or match is None:
        return created
    yy, mm = int(match.group(1)), int(match.group(2))
    year = 2000 + yy if "/" not in arxiv_id or yy < 91 else 1900 + yy
    end = date(year, mm, calendar.monthrange(year, mm)[1])
    return min(created, end)


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
        "created": first_version_bound(paper.id, paper.created),
        "updated": paper.updated,
        "doi": _clean(paper.doi),
        "journal_ref": _clean(paper.journal_ref),
        "comments": _clean(paper.comments),
        "license": _clean(paper.license),
        "datestamp": paper.datestamp,
        "source": source,
    }
