"""arXiv ids: version stripping, validation and the year rule (one function, used everywhere)."""

from __future__ import annotations

import re

import polars as pl

# New style since 2007-04: YYMM.NNNN (until 2014-12) or YYMM.NNNNN (since 2015-01).
_NEW = re.compile(r"^(\d{2})(\d{2})\.(\d{4,5})$")
# Old style: archive[.SUBJ-CLASS]/YYMMNNN, e.g. hep-th/9901001, solv-int/9901001, math.AG/0101001.
_OLD = re.compile(r"^([a-z][a-z-]*(?:\.[A-Z]{2})?)/(\d{2})(\d{2})(\d{3})$")
_VERSION = re.compile(r"v\d+$")
_OAI_PREFIX = "oai:arXiv.org:"

# polars twins of the regexes above, for vectorised use over whole columns
_NEW_YY = r"^(\d{2})\d{2}\.\d{4,5}$"
_NEW_YYMM = r"^(\d{4})\.\d{4,5}$"
_OLD_YYMM = r"^[a-z][a-z-]*(?:\.[A-Z]{2})?/(\d{4})\d{3}$"
_OLD_YY = r"^[a-z][a-z-]*(?:\.[A-Z]{2})?/(\d{2})\d{5}$"


class InvalidIdError(ValueError):
    """Not an arXiv identifier."""


def strip_version(arxiv_id: str) -> str:
    """``2401.00001v3`` → ``2401.00001``; ``solv-int/9901001v2`` → ``solv-int/9901001``."""
    return _VERSION.sub("", arxiv_id)


def normalize_id(raw: str) -> str:
    """Strip whitespace, an ``oai:arXiv.org:`` prefix and a version suffix; validate the result."""
    arxiv_id = raw.strip()
    if arxiv_id.startswith(_OAI_PREFIX):
        arxiv_id = arxiv_id[len(_OAI_PREFIX) :]
    arxiv_id = strip_version(arxiv_id)
    if not (_NEW.match(arxiv_id) or _OLD.match(arxiv_id)):
        raise InvalidIdError(f"not an arXiv id: {raw!r}")
    return arxiv_id


def yy_to_year(yy: int) -> int:
    """Two-digit year of an id → calendar year (arXiv started in 1991)."""
    return 1900 + yy if yy >= 91 else 2000 + yy


def paper_year(arxiv_id: str) -> int:
    """First-submission year of a version-less id. Never changes when a paper is revised."""
    match = _NEW.match(arxiv_id)
    if match:
        return 2000 + int(match.group(1))
    match = _OLD.match(arxiv_id)
    if match:
        return yy_to_year(int(match.group(2)))
    raise InvalidIdError(f"not an arXiv id: {arxiv_id!r}")


def id_expr(column: str | pl.Expr) -> pl.Expr:
    """Vectorised ``normalize_id`` without the validation: trimmed, OAI prefix and version stripped
    (``year_expr`` of the result is null for an invalid id)."""
    col = pl.col(column) if isinstance(column, str) else column
    return col.str.strip_chars().str.strip_prefix(_OAI_PREFIX).str.replace(_VERSION.pattern, "")


def year_expr(column: str | pl.Expr = "id") -> pl.Expr:
    """Vectorised ``paper_year`` over an id column; null where the id is not a valid arXiv id."""
    col = pl.col(column) if isinstance(column, str) else column
    new_yy = col.str.extract(_NEW_YY, 1).cast(pl.Int32)
    old_yy = col.str.extract(_OLD_YY, 1).cast(pl.Int32)
    old_year = pl.when(old_yy >= 91).then(old_yy + 1900).otherwise(old_yy + 2000)
    return pl.coalesce(new_yy + 2000, old_year)


def id_month_end_expr(column: str | pl.Expr = "id") -> pl.Expr:
    """The last day of the month an id was assigned in (``2511.23462`` → 2025-11-30, ``hep-th/9901001`` →
    1999-01-31); null for an invalid id. arXiv assigns the id when v1 is announced, so no first version is
    dated after it (it can be months earlier: a held submission)."""
    col = pl.col(column) if isinstance(column, str) else column
    new_ym = col.str.extract(_NEW_YYMM, 1)
    old_ym = col.str.extract(_OLD_YYMM, 1)
    yymm = pl.coalesce(new_ym, old_ym)
    yy = yymm.str.slice(0, 2).cast(pl.Int32)
    mm = yymm.str.slice(2, 2).cast(pl.Int32)
    year = pl.when(new_ym.is_not_null()).then(yy + 2000).when(yy >= 91).then(yy + 1900).otherwise(yy + 2000)
    valid = year_expr(col).is_not_null() & mm.is_between(1, 12)
    return pl.when(valid).then(pl.date(year, mm, 1).dt.month_end())
