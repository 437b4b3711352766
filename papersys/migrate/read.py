"""Reading legacy files: the cheap key pass (ids, dates, vector lengths) and, for the rows that won, the
metadata normalised to the store's schema together with the hash of the text their vectors stand for."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from papersys.embed.text import hash_texts, render_texts
from papersys.migrate.ids import normalize_ids
from papersys.migrate.legacy import LEGACY_TEMPLATE, Inspection, LegacyInput
from papersys.migrate.report import IdCounts
from papersys.store.ids import year_expr
from papersys.store.metadata import METADATA_SCHEMA, clean_text_expr

SAMPLES = 5  # repaired and flagged ids quoted in the report, each
_DATE_COLUMNS = {1: ("updated", "date", "created"), 2: ("update_date", "publish_date")}
_STRINGS = pl.List(pl.String())


@dataclass(frozen=True)
class Keys:
    """One input's rows with a usable id and date: ``row, id, key, year, erow`` (``erow``: the vector row)."""

    frame: pl.DataFrame
    rows: int
    ids: IdCounts
    no_date: int
    vector_rows: int = 0
    vector_ids: IdCounts | None = None
    vectors_without_metadata: int = 0
    notes: tuple[str, ...] = ()


def date_expr(name: str, dtype: pl.DataType) -> pl.Expr:
    """A date column from a ``YYYY-MM-DD…`` string, a date or a datetime (unparseable → null)."""
    col = pl.col(name)
    if isinstance(dtype, pl.Date):
        return col
    if isinstance(dtype, pl.Datetime):
        return col.dt.date()
    if isinstance(dtype, pl.Null):
        return pl.lit(None, dtype=pl.Date)
    return col.cast(pl.String).str.strip_chars().str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)


def id_counts(raw: pl.Series, norm: pl.DataFrame) -> IdCounts:
    status = norm["status"]
    samples: list[tuple[str, str]] = []
    for kind in ("repaired", "flagged"):
        picked = pl.DataFrame({"raw": raw.cast(pl.String), "id": norm["id"]}).filter(status == kind).head(SAMPLES)
        samples += [(str(r), i or "") for r, i in picked.iter_rows()]
    return IdCounts(
        rows=len(raw),
        versioned=int((status == "versioned").sum()),
        repaired=int((status == "repaired").sum()),
        flagged=int((status == "flagged").sum()),
        samples=tuple(samples),
    )


def read_keys(inp: LegacyInput, meta: Inspection, vectors: Inspection | None) -> Keys:
    """The key pass over one input: ids normalised/repaired, the newest date per row, the paper's year."""
    present = [c for c in _DATE_COLUMNS[inp.generation] if c in meta.schema]
    raw = pl.read_parquet(inp.path, columns=["id", *present])
    norm = normalize_ids(raw["id"])
    key = pl.coalesce([date_expr(c, meta.schema[c]) for c in present]).alias("key")
    frame = raw.select(key).with_columns(norm["id"]).with_row_index("row")
    usable = frame.filter(pl.col("id").is_not_null())
    keys = usable.filter(pl.col("key").is_not_null()).with_columns(year=year_expr("id"))
    counts = id_counts(raw["id"], norm)
    no_date = usable.height - keys.height
    if inp.generation == 1:
        return Keys(keys.with_columns(erow=pl.col("row")), raw.height, counts, no_date)
    if inp.vectors_path is None or vectors is None:
        return Keys(keys.with_columns(erow=pl.lit(None, dtype=pl.UInt32)), raw.height, counts, no_date)
    vraw = pl.read_parquet(inp.vectors_path, columns=["id"])["id"]
    vnorm = normalize_ids(vraw)
    vrows = vnorm.with_row_index("erow").filter(pl.col("id").is_not_null())
    unique = vrows.unique("id", keep="last", maintain_order=True)
    notes = []
    if unique.height < vrows.height:
        notes.append(f"{vrows.height - unique.height:,} repeated ids in the embedding file (the last row of each kept)")
    orphans = unique.join(keys.select("id"), on="id", how="anti").height
    joined = keys.join(unique.select("id", "erow"), on="id", how="left", maintain_order="left")
    return Keys(joined, raw.height, counts, no_date, len(vraw), id_counts(vraw, vnorm), orphans, tuple(notes))


def vector_lengths(path: Path, column: str, dtype: pl.DataType) -> dict[int, int]:
    """Rows per vector length in one column (a fixed-size array column has one length)."""
    if isinstance(dtype, pl.Array):
        rows = pl.scan_parquet(path).select(pl.len()).collect().item()
        return {dtype.size: int(rows)} if rows else {}
    counts = (
        pl.scan_parquet(path)
        .select(pl.col(column).list.len().alias("n"))
        .drop_nulls()
        .group_by("n")
        .len()
        .collect(engine="streaming")
    )
    return {int(n): int(c) for n, c in counts.iter_rows() if n}


def _texts_expr(name: str, schema: dict[str, pl.DataType], split: str | None) -> pl.Expr:
    """A list-of-strings column (authors, categories) from a list, or from one string cut at ``split``."""
    if name not in schema:
        return pl.lit([], dtype=_STRINGS)
    col = pl.col(name)
    if isinstance(schema[name], pl.List | pl.Array):
        listed = col.cast(_STRINGS)
    elif split is None:  # categories as one string: whitespace-separated
        listed = col.cast(pl.String).str.extract_all(r"\S+")
    else:
        listed = col.cast(pl.String).str.split(split)
    cleaned = listed.list.eval(clean_text_expr(pl.element())).list.eval(pl.element().filter(pl.element() != ""))
    return cleaned.fill_null(pl.lit([], dtype=_STRINGS))


def _legacy_text(name: str) -> pl.Expr:
    """What the legacy pipeline made of a field: newlines to spaces, stripped."""
    return pl.col(name).str.replace_all("\n", " ", literal=True).str.strip_chars()


def read_metadata(inp: LegacyInput, meta: Inspection, wanted: pl.DataFrame) -> pl.DataFrame:
    """The metadata of the ``wanted`` rows (``row, id, key``) in the store's schema plus ``row``, ``year``,
    ``text_hash`` (of the legacy template over the cleaned text) and ``whitespace_only`` (the text the legacy
    pipeline embedded differs from that only in whitespace)."""
    schema = dict(meta.schema)
    gen = inp.generation
    columns = [c for c in ("title", "abstract", "authors", "categories", "license", *_DATE_COLUMNS[gen]) if c in schema]
    raw = pl.read_parquet(inp.path, columns=columns).with_row_index("row")
    frame = wanted.select("row", "id", "key").join(raw, on="row", how="inner", maintain_order="left")
    created = date_expr("created" if gen == 1 else "publish_date", schema["created" if gen == 1 else "publish_date"])
    if gen == 1:
        updated = date_expr("updated", schema["updated"]) if "updated" in schema else pl.lit(None, dtype=pl.Date)
    elif "update_date" in schema:  # generation 2 repeats the first date when there was no revision
        upd = date_expr("update_date", schema["update_date"])
        updated = pl.when(upd > created).then(upd).otherwise(None)
    else:
        updated = pl.lit(None, dtype=pl.Date)
    frame = frame.with_columns(
        pl.col("title").cast(pl.String).fill_null(""), pl.col("abstract").cast(pl.String).fill_null("")
    )
    legacy = pl.concat_str([_legacy_text("title"), pl.lit("\n"), _legacy_text("abstract")])
    frame = frame.with_columns(_legacy=legacy)
    categories = _texts_expr("categories", schema, None).list.unique(maintain_order=True)
    out = frame.select(
        "row",
        "id",
        clean_text_expr("title").alias("title"),
        clean_text_expr("abstract").alias("abstract"),
        _texts_expr("authors", schema, ", ").alias("authors"),
        categories.alias("categories"),
        categories.list.first().alias("primary_category"),
        pl.coalesce(created, pl.col("key")).alias("created"),
        updated.alias("updated"),
        *(pl.lit(None, dtype=pl.String).alias(c) for c in ("doi", "journal_ref", "comments")),
        (pl.col("license").cast(pl.String) if "license" in schema else pl.lit(None, dtype=pl.String)).alias("license"),
        pl.col("key").alias("datestamp"),
        pl.lit("legacy").alias("source"),
        "_legacy",
    ).cast(dict(METADATA_SCHEMA))  # type: ignore[arg-type]
    texts = render_texts(out, LEGACY_TEMPLATE)
    return out.with_columns(hash_texts(texts), year=year_expr("id"), whitespace_only=pl.col("_legacy") != texts).drop(
        "_legacy"
    )
