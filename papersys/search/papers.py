"""Papers by id from the metadata store: one filtered read per year file (ids sort the files, so the
reader skips every row group that cannot hold them)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import date
from pathlib import Path

import polars as pl

from papersys.errors import StoreError
from papersys.search.results import Paper
from papersys.store.ids import InvalidIdError, normalize_id, paper_year
from papersys.store.layout import Layout

COLUMNS = [
    "id",
    "title",
    "abstract",
    "authors",
    "categories",
    "primary_category",
    "created",
    "updated",
    "doi",
    "journal_ref",
    "comments",
    "license",
]


def paper_id(raw: str) -> str:
    """A user's id (versioned, with the OAI or URL prefix, old or new style) as stored; ValueError if none."""
    text = raw.strip()
    for prefix in ("https://arxiv.org/abs/", "http://arxiv.org/abs/", "arxiv.org/abs/", "arXiv:", "arxiv:"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    try:
        arxiv_id = normalize_id(text)
        paper_year(arxiv_id)
    except InvalidIdError as exc:
        raise ValueError(f"{raw!r} is not an arXiv id (like 2401.12345, 2401.12345v2 or hep-th/9901001)") from exc
    return arxiv_id


def load_papers(layout: Layout, ids: Iterable[str]) -> dict[str, Paper]:
    """The stored papers among ``ids`` (version-less), by id; ids without metadata are left out. One query
    over the year files that can hold them, which polars reads in parallel."""
    by_year: dict[int, list[str]] = defaultdict(list)
    for arxiv_id in ids:
        by_year[paper_year(arxiv_id)].append(arxiv_id)
    paths = [(layout.metadata_file(year), wanted) for year, wanted in sorted(by_year.items())]
    scans = [
        pl.scan_parquet(path).select(COLUMNS).filter(pl.col("id").is_in(wanted))
        for path, wanted in paths
        if path.exists()
    ]
    if not scans:
        return {}
    try:
        frame = pl.concat(scans).collect()
    except Exception as exc:
        bad = _unreadable([path for path, _ in paths if path.exists()])
        raise StoreError(bad, f"cannot be read ({type(exc).__name__})", "see `papersys status`") from exc
    return {str(row["id"]): _paper(row) for row in frame.iter_rows(named=True)}


def _unreadable(paths: list[Path]) -> Path:
    """The first of ``paths`` that cannot be scanned (for the error message), else the first."""
    for path in paths:
        try:
            pl.scan_parquet(path).select(COLUMNS).head(0).collect()
        except Exception:
            return path
    return paths[0]


def paper_record(row: Mapping[str, object]) -> bytes:
    """A paper's display fields (``COLUMNS`` but the id) as compact JSON, dates as ISO strings: what the
    full-text index stores so results can be read without the year files."""
    record = {column: row[column] for column in COLUMNS[1:]}
    for column in ("created", "updated"):
        value = record[column]
        record[column] = value.isoformat() if isinstance(value, date) else None
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()


def paper_from_record(arxiv_id: str, raw: bytes) -> Paper:
    """The paper of a stored display record (``paper_record``)."""
    row: dict[str, object] = {"id": arxiv_id, **json.loads(raw)}
    for column in ("created", "updated"):
        value = row.get(column)
        row[column] = date.fromisoformat(value) if isinstance(value, str) else None
    return _paper(row)


def _paper(row: Mapping[str, object]) -> Paper:
    return Paper(
        id=str(row["id"]),
        title=str(row["title"]),
        abstract=str(row["abstract"]),
        authors=tuple(row["authors"] or ()),  # type: ignore[arg-type]
        categories=tuple(row["categories"] or ()),  # type: ignore[arg-type]
        primary_category=str(row["primary_category"] or ""),
        created=row["created"],  # type: ignore[arg-type]
        updated=row["updated"],  # type: ignore[arg-type]
        doi=row["doi"],  # type: ignore[arg-type]
        journal_ref=row["journal_ref"],  # type: ignore[arg-type]
        comments=row["comments"],  # type: ignore[arg-type]
        license=row["license"],  # type: ignore[arg-type]
    )
