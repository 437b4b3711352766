"""The column builder: metadata rows accumulated column-wise (cheap per record), then one typed DataFrame.

The rules that make each value (cleaning, authors, categories, dates) live in ``fields``.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from papersys.ingest.fields import primary_category
from papersys.store.metadata import COLUMNS, DELETION_SCHEMA, conform

_LIST_COLUMNS = ("authors", "categories")
_SEP = "\x1f"  # str.split() treats it as whitespace, so no cleaned name or category contains it


def _list_column(name: str, values: list[object]) -> pl.Series:
    """Python lists of str → a List(String) column.

    Joining each list and splitting the joined column in polars is ~10x faster than polars' row-by-row
    conversion of nested lists (a third of a snapshot chunk's cost); any list the round trip would not
    reproduce exactly (an element holding the separator, a non-str element) takes the exact slow path.
    """
    dtype = pl.List(pl.String())
    try:
        joined = pl.Series(name, [_SEP.join(v) for v in values], dtype=pl.String())  # type: ignore[arg-type]
    except TypeError:
        return pl.Series(name, values, dtype=dtype, strict=False)
    lengths = pl.Series([len(v) for v in values], dtype=pl.UInt32())  # type: ignore[arg-type]
    split = pl.select(
        pl.when(lengths == 0).then(pl.lit([], dtype=dtype)).otherwise(joined.str.split(_SEP)).alias(name)
    ).to_series()
    if split.len() and not (split.list.len() == lengths).all():
        return pl.Series(name, values, dtype=dtype, strict=False)
    return split


class MetadataBatch:
    """Accumulates records column-wise (cheap per record), then becomes one typed DataFrame."""

    def __init__(self) -> None:
        self._cols: dict[str, list[object]] = {c: [] for c in COLUMNS}
        self._del_ids: list[str] = []
        self._del_dates: list[date] = []

    def __len__(self) -> int:
        return len(self._cols["id"])

    def add(
        self,
        *,
        id: str,
        title: str,
        abstract: str,
        authors: list[str],
        categories: list[str],
        created: date,
        updated: date | None,
        doi: str | None,
        journal_ref: str | None,
        comments: str | None,
        license: str | None,
        datestamp: date,
        source: str,
    ) -> None:
        cols = self._cols
        cols["id"].append(id)
        cols["title"].append(title)
        cols["abstract"].append(abstract)
        cols["authors"].append(authors)
        cols["categories"].append(categories)
        cols["primary_category"].append(primary_category(categories))
        cols["created"].append(created)
        cols["updated"].append(updated)
        cols["doi"].append(doi)
        cols["journal_ref"].append(journal_ref)
        cols["comments"].append(comments)
        cols["license"].append(license)
        cols["datestamp"].append(datestamp)
        cols["source"].append(source)

    def add_deletion(self, arxiv_id: str, datestamp: date) -> None:
        self._del_ids.append(arxiv_id)
        self._del_dates.append(datestamp)

    def records(self) -> pl.DataFrame:
        scalars = {name: values for name, values in self._cols.items() if name not in _LIST_COLUMNS}
        frame = pl.DataFrame(
            scalars,
            schema_overrides={"created": pl.Date(), "updated": pl.Date(), "datestamp": pl.Date()},
            strict=False,
        )
        return conform(frame.with_columns(_list_column(name, self._cols[name]) for name in _LIST_COLUMNS))

    def deletion_frame(self) -> pl.DataFrame:
        return pl.DataFrame({"id": self._del_ids, "datestamp": self._del_dates}, schema=dict(DELETION_SCHEMA))
