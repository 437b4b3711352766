"""The metadata store: one Parquet file per first-submission year, one row per id, newest datestamp wins."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import polars as pl

from papersys.errors import StoreError
from papersys.faults import crash_point
from papersys.store.atomic import sweep_temp_files, write_parquet
from papersys.store.ids import id_month_end_expr, year_expr
from papersys.store.layout import Layout

METADATA_SCHEMA: Mapping[str, pl.DataType] = {
    "id": pl.String(),
    "title": pl.String(),
    "abstract": pl.String(),
    "authors": pl.List(pl.String()),
    "categories": pl.List(pl.String()),
    "primary_category": pl.String(),
    "created": pl.Date(),
    "updated": pl.Date(),
    "doi": pl.String(),
    "journal_ref": pl.String(),
    "comments": pl.String(),
    "license": pl.String(),
    "datestamp": pl.Date(),
    "source": pl.String(),
}
COLUMNS = tuple(METADATA_SCHEMA)
REQUIRED = ("id", "title", "abstract", "primary_category", "created", "datestamp", "source")
DELETION_SCHEMA: Mapping[str, pl.DataType] = {"id": pl.String(), "datestamp": pl.Date()}
# ``source`` of a row made from an announcement feed item: partial metadata until the OAI record replaces it
FEED_SOURCE = "feed"
# Year files are sorted by id and written in row groups of this many papers, so that reading a few papers
# by id (search results) decompresses a few small row groups, skipped by their id statistics, instead of
# the whole year (devdoc/search.md: 10 papers of a 200,000-paper year, ~140 ms in one row group).
ROW_GROUP_ROWS = 1024


# Every character Python's str.isspace() accepts, so clean_text and clean_text_expr agree exactly.
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_WS_CLASS = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in WHITESPACE) + "]"
_WS_NOT_SPACE = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in WHITESPACE if c != " ") + "]"
# Runs of two or more, or one that is not a plain space: single spaces (most matches) stay untouched,
# which makes the replacement several times faster than rewriting every whitespace run.
_WS_RUN = f"{_WS_CLASS}{{2,}}|{_WS_NOT_SPACE}"


def clean_text(text: str) -> str:
    """Collapse every whitespace run (arXiv's hard line breaks included) to one space, and trim."""
    return " ".join(text.split())


def clean_text_expr(column: str | pl.Expr) -> pl.Expr:
    """``clean_text`` over a whole string column (identical results, vectorised); an expression such as
    ``pl.element()`` works too, for the strings inside a list column."""
    expr = pl.col(column) if isinstance(column, str) else column
    return expr.str.replace_all(_WS_RUN, " ").str.strip_chars(WHITESPACE)


def empty_metadata() -> pl.DataFrame:
    return pl.DataFrame(schema=dict(METADATA_SCHEMA))


def conform(frame: pl.DataFrame) -> pl.DataFrame:
    """Cast ``frame`` to the metadata schema, in schema column order (missing optional columns → null)."""
    exprs = []
    for name, dtype in METADATA_SCHEMA.items():
        if name in frame.columns:
            exprs.append(pl.col(name).cast(dtype))
        elif name in REQUIRED:
            raise ValueError(f"metadata frame lacks required column {name!r}")
        else:
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
    return frame.select(exprs)


_RECOVER = {
    "metadata": "restore it from a backup, or move it aside and reload that year's papers "
    "(papersys ingest --snapshot FILE, or ingest --from an early date)",
    "deletions": "restore it from a backup, or move it aside (papersys then forgets which papers arXiv "
    "reported deleted until it sees those records again)",
}


def check_schema(path: Path, expected: Mapping[str, pl.DataType], what: str) -> None:
    """Raise StoreError unless the Parquet file at ``path`` opens and has exactly ``expected``."""
    try:
        schema = pl.read_parquet_schema(path)
    except OSError as exc:  # permissions, a directory where the file should be, I/O errors
        raise StoreError(path, f"cannot read: {exc.strerror or exc}", "check its permissions and the disk") from exc
    except Exception as exc:  # polars raises several types for a torn or non-Parquet file
        raise StoreError(
            path,
            f"not a readable Parquet file ({type(exc).__name__}; truncated or overwritten?)",
            _RECOVER.get(what, "restore it from a backup"),
        ) from exc
    if dict(schema) != dict(expected):
        raise StoreError(
            path,
            f"is not a papersys {what} file ({schema_difference(dict(schema), dict(expected))})",
            "move it aside; papersys never rewrites a file it does not recognise",
        )


def schema_difference(got: Mapping[str, pl.DataType], expected: Mapping[str, pl.DataType]) -> str:
    """What separates ``got`` from ``expected``, in one short line."""
    parts = []
    missing = [name for name in expected if name not in got]
    extra = [name for name in got if name not in expected]
    wrong = [f"{name} is {got[name]}, not {kind}" for name, kind in expected.items() if got.get(name, kind) != kind]
    if missing:
        parts.append("lacks " + ", ".join(missing))
    if extra:
        parts.append("unexpected " + ", ".join(extra))
    if wrong:
        parts.append("; ".join(wrong))
    return "; ".join(parts)


def read_year(layout: Layout, year: int, columns: list[str] | None = None) -> pl.DataFrame:
    """The stored metadata of one year (empty frame when there is no file yet)."""
    path = layout.metadata_file(year)
    if not path.exists():
        frame = empty_metadata()
        return frame.select(columns) if columns else frame
    check_schema(path, METADATA_SCHEMA, "metadata")
    try:
        return pl.read_parquet(path, columns=columns)
    except Exception as exc:
        raise StoreError(
            path,
            f"cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
            _RECOVER["metadata"],
        ) from exc


def year_rows(layout: Layout, year: int) -> int:
    """How many papers one year holds (0 without a file), from the Parquet footer: no column is read."""
    path = layout.metadata_file(year)
    if not path.exists():
        return 0
    check_schema(path, METADATA_SCHEMA, "metadata")
    try:
        return int(pl.scan_parquet(path).select(pl.len()).collect().item())
    except Exception as exc:
        raise StoreError(path, f"cannot be read ({type(exc).__name__})", _RECOVER["metadata"]) from exc


def scan_all(layout: Layout) -> pl.LazyFrame:
    """A lazy frame over every year file (for whole-store queries)."""
    files = [layout.metadata_file(y) for y in layout.metadata_years()]
    if not files:
        return empty_metadata().lazy()
    return pl.scan_parquet(files)


def first_version_dates(records: pl.DataFrame) -> pl.DataFrame:
    """``created`` bounded by the last day of the id's month: arXiv assigns the id when v1 is announced,
    so a later date (the current endpoint's ``arXiv`` format sometimes gives a later version's) cannot be
    v1's. Applied to every row entering the store; ``upsert`` also keeps the earliest ``created`` ever
    stored for an id (data-formats.md, "created")."""
    return records.with_columns(created=pl.min_horizontal("created", id_month_end_expr("id")))


def newest_datestamp(layout: Layout) -> date | None:
    """The newest datestamp in the store (how fresh the copy is); None for an empty store. Reads the
    datestamp column only (a few MB at 3 M papers)."""
    files = [layout.metadata_file(y) for y in layout.metadata_years()]
    if not files:
        return None
    for path in files:
        check_schema(path, METADATA_SCHEMA, "metadata")
    newest = pl.scan_parquet(files).select(pl.col("datestamp").max()).collect().item()
    return newest if isinstance(newest, date) else None


@dataclass(frozen=True)
class YearChange:
    year: int
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    superseded: int = 0  # incoming rows older than what the store (or a tombstone) already holds
    rows: int = 0  # rows in the year file afterwards


@dataclass(frozen=True)
class UpsertResult:
    years: tuple[YearChange, ...] = field(default_factory=tuple)

    def total(self, attr: str) -> int:
        return sum(getattr(y, attr) for y in self.years)


def _newest_per_id(frame: pl.DataFrame) -> pl.DataFrame:
    """Keep one row per id: the newest datestamp; among equals, the last one given."""
    return (
        frame.with_row_index("_order")
        .sort(["id", "datestamp", "_order"], nulls_last=False)
        .unique(subset="id", keep="last", maintain_order=True)
        .drop("_order")
    )


def read_deletions(layout: Layout) -> pl.DataFrame:
    path = layout.deletions_file
    if not path.exists():
        return pl.DataFrame(schema=dict(DELETION_SCHEMA))
    check_schema(path, DELETION_SCHEMA, "deletions")
    return pl.read_parquet(path)


def _as_deletions(deletions: pl.DataFrame | None) -> pl.DataFrame:
    if deletions is None:
        return pl.DataFrame(schema=dict(DELETION_SCHEMA))
    return deletions.select(pl.col("id").cast(pl.String), pl.col("datestamp").cast(pl.Date))


def record_tombstones(layout: Layout, deletions: pl.DataFrame | None, *, dry_run: bool = False) -> pl.DataFrame:
    """All tombstones: the stored ones plus ``deletions`` (newest per id), saved once when there are new ones."""
    deletions = _as_deletions(deletions)
    tombstones = _newest_per_id(pl.concat([read_deletions(layout), deletions]))
    if not dry_run and deletions.height:
        write_parquet(tombstones.sort("id"), layout.deletions_file)
        crash_point("metadata.tombstones_written")  # tombstones saved, year files not yet merged
    return tombstones


def upsert(
    layout: Layout,
    records: pl.DataFrame,
    deletions: pl.DataFrame | None = None,
    *,
    dry_run: bool = False,
    tombstones: pl.DataFrame | None = None,
) -> UpsertResult:
    """Merge ``records`` (metadata schema) and ``deletions`` (id, datestamp) into the year files.

    Newest datestamp wins per id; on a tie the incoming row wins (a re-harvest refreshes). A feed row
    (``source = "feed"``) is replaced by any other row whatever the datestamps, and never replaces one. A deletion
    removes the id when it is at least as new as the stored row, and is kept as a tombstone so that an
    older copy (a snapshot, a legacy file) cannot bring the paper back. Only changed files are rewritten.
    A caller merging year by year passes ``tombstones`` from one ``record_tombstones`` call, so the
    tombstone file is read and written once per merge, not once per year.
    """
    records = conform(records)
    deletions = _as_deletions(deletions)
    if tombstones is None:
        tombstones = record_tombstones(layout, deletions, dry_run=dry_run)
    if not dry_run:
        sweep_temp_files(layout.metadata_dir)

    records = first_version_dates(_newest_per_id(records)).with_columns(_year=year_expr("id"))
    if records["_year"].null_count():
        bad = records.filter(pl.col("_year").is_null())["id"].head(3).to_list()
        raise ValueError(f"records with invalid ids reached the store: {bad}")
    dels = deletions.with_columns(_year=year_expr("id")).filter(pl.col("_year").is_not_null())
    tombs_by_id = tombstones.rename({"datestamp": "_tomb"})

    changes = []
    years = sorted(set(records["_year"].to_list()) | set(dels["_year"].to_list()))
    for year in years:
        incoming = records.filter(pl.col("_year") == year).drop("_year")
        year_dels = dels.filter(pl.col("_year") == year).drop("_year")
        changes.append(
            _upsert_year(layout, year, incoming, deletions=year_dels, tombstones=tombs_by_id, dry_run=dry_run)
        )
    return UpsertResult(tuple(changes))


def _upsert_year(
    layout: Layout,
    year: int,
    incoming: pl.DataFrame,
    *,
    deletions: pl.DataFrame,
    tombstones: pl.DataFrame,
    dry_run: bool,
) -> YearChange:
    existing = read_year(layout, year)
    # drop incoming rows that a tombstone at least as new supersedes
    with_tomb = incoming.join(tombstones, on="id", how="left")
    live = with_tomb.filter(pl.col("_tomb").is_null() | (pl.col("datestamp") > pl.col("_tomb"))).drop("_tomb")
    superseded = incoming.height - live.height

    old = existing.select(
        "id",
        pl.col("datestamp").alias("_old"),
        pl.col("source").alias("_old_source"),
        pl.col("created").alias("_old_created"),
    )
    cand = live.join(old, on="id", how="left")
    # a feed row is a stand-in until the full record arrives: any other source replaces it whatever the
    # datestamps, and a feed row never replaces a stored row; between rows of one kind, newest wins
    feed_in, feed_old = pl.col("source") == FEED_SOURCE, pl.col("_old_source") == FEED_SOURCE
    wins = cand.filter(
        pl.col("_old").is_null()
        | (~feed_in & feed_old)
        | ((feed_in == feed_old) & (pl.col("datestamp") >= pl.col("_old")))
    )
    superseded += cand.height - wins.height
    new_rows = wins.filter(pl.col("_old").is_null()).drop("_old", "_old_source", "_old_created")
    # the earliest first-version date ever stored for an id is kept: a later record cannot move it later
    replacing = (
        wins.filter(pl.col("_old").is_not_null())
        .with_columns(created=pl.min_horizontal("created", "_old_created"))
        .drop("_old", "_old_source", "_old_created")
    )

    # a replacement that only re-states what is stored (same content) is "unchanged", not "updated"
    content = [c for c in COLUMNS if c not in ("id", "source")]
    compared = replacing.join(existing, on="id", how="left", suffix="_prev")
    same = pl.all_horizontal([pl.col(c).eq_missing(pl.col(f"{c}_prev")) for c in content])
    same = same & ~((pl.col("source_prev") == FEED_SOURCE) & (pl.col("source") != FEED_SOURCE))  # feed → full
    changed_ids = compared.filter(~same)["id"]
    unchanged = replacing.height - changed_ids.len()

    kill = deletions.join(old, on="id", how="inner").filter(pl.col("datestamp") >= pl.col("_old"))["id"]
    kill = kill.filter(~kill.is_in(new_rows["id"].implode()) & ~kill.is_in(changed_ids.implode()))

    touched = pl.concat([changed_ids, kill])
    if new_rows.height == 0 and touched.len() == 0:
        return YearChange(year, unchanged=unchanged, superseded=superseded, rows=existing.height)
    updated_rows = replacing.filter(pl.col("id").is_in(changed_ids.implode()))
    result = pl.concat([existing.filter(~pl.col("id").is_in(touched.implode())), new_rows, updated_rows]).sort("id")
    if not dry_run:
        write_parquet(result, layout.metadata_file(year), row_group_size=ROW_GROUP_ROWS)
        crash_point("metadata.year_written")
    return YearChange(
        year,
        new=new_rows.height,
        updated=changed_ids.len(),
        unchanged=unchanged,
        deleted=kill.len(),
        superseded=superseded,
        rows=result.height,
    )
