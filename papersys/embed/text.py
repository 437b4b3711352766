"""What a model embeds per paper: its template (and prefix) rendered over normalised metadata, and its hash."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from string import Formatter

import polars as pl

from papersys.errors import UsageError

# how list fields read inside a text: arXiv's own spellings
_LIST_SEPARATORS = {"categories": " ", "authors": ", "}


def template_fields(template: str) -> list[str]:
    """The metadata columns a template reads, in order of first use."""
    names = [field for _, field, _, _ in Formatter().parse(template) if field is not None]
    return list(dict.fromkeys(names))


def _field_expr(name: str) -> pl.Expr:
    col = pl.col(name)
    if name in _LIST_SEPARATORS:
        return col.list.join(_LIST_SEPARATORS[name]).fill_null("")
    return col.cast(pl.String).fill_null("")


def render_texts(frame: pl.DataFrame, template: str, prefix: str = "") -> pl.Series:
    """``prefix + template.format(**row)`` for every row of ``frame`` (null fields render as '')."""
    pieces: list[pl.Expr] = [pl.lit(prefix)] if prefix else []
    for literal, field, spec, conversion in Formatter().parse(template):
        if literal:
            pieces.append(pl.lit(literal))
        if field is None:
            continue
        if spec or conversion:
            raise UsageError(f"template field {{{field}}} uses a format spec or conversion; use plain {{{field}}}")
        if field not in frame.columns:
            raise UsageError(f"template field {{{field}}} is not a metadata column")
        pieces.append(_field_expr(field))
    if not pieces:
        return pl.Series("text", [""] * frame.height, dtype=pl.String)
    return frame.select(pl.concat_str(pieces).alias("text")).to_series()


def text_hash(text: str) -> str:
    """blake2b-128 (hex) of the exact UTF-8 text: stable across processes and versions, unlike polars' hash."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def hash_texts(texts: pl.Series | Iterable[str]) -> pl.Series:
    """``text_hash`` of every text (about 1 µs each)."""
    values = texts.to_list() if isinstance(texts, pl.Series) else list(texts)
    return pl.Series("text_hash", [text_hash(t) for t in values], dtype=pl.String)
