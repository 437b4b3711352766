"""Legacy ids (pure): strip versions, repair float round-trip damage where unambiguous, flag the rest. Stricter
than the store's check: a new-style id has its era's width, as ``2402.0331`` is a float made of ``2402.03310``."""

from __future__ import annotations

import re

import polars as pl

from papersys.store.ids import InvalidIdError, normalize_id, strip_version

# A float keeps the digits but drops leading zeros of the integer part and trailing zeros of the fraction:
# 0704.0010 -> 704.001, 2402.03300 -> 2402.033. Such a value pads back to exactly one id.
_NEW_STYLE = re.compile(r"^(\d{3,4})\.(\d{1,5})$")
FIRST_NEW_STYLE = "0704"  # new-style ids began in April 2007
FIVE_DIGITS_FROM = "1501"  # and have had five digits after the dot since January 2015
STATUSES = ("ok", "versioned", "repaired", "flagged")
# ids that need no work at all (nearly every row): the vectorised fast path
_CLEAN = (
    r"^(?:(?:07(?:0[4-9]|1[0-2])|(?:0[89]|1[0-4])(?:0[1-9]|1[0-2]))\.\d{4}"
    r"|(?:1[5-9]|[2-9]\d)(?:0[1-9]|1[0-2])\.\d{5}"
    r"|[a-z][a-z-]*(?:\.[A-Z]{2})?/\d{7})$"
)


def repair_id(raw: str | None) -> tuple[str | None, str]:
    """``(id, status)``: status ``ok``, ``versioned`` (suffix stripped), ``repaired`` or ``flagged`` (id None)."""
    if raw is None:
        return None, "flagged"
    text = raw.strip()
    try:
        arxiv_id: str | None = normalize_id(text)
    except InvalidIdError:
        arxiv_id = None
    versioned = arxiv_id is not None and strip_version(text) != text
    if arxiv_id is not None and "/" in arxiv_id:  # old style: the store's check is exact
        return arxiv_id, "versioned" if versioned else "ok"
    fixed = _new_style(arxiv_id or text)
    if fixed is None:
        return None, "flagged"
    if fixed != (arxiv_id or text):
        return fixed, "repaired"
    return fixed, "versioned" if versioned else "ok"


def _new_style(text: str) -> str | None:
    """The one new-style id ``text`` can stand for (zero-padded to its era's width), else None."""
    match = _NEW_STYLE.match(text)
    if not match:
        return None
    yymm, digits = match.group(1).zfill(4), match.group(2)
    width = 5 if yymm >= FIVE_DIGITS_FROM else 4
    if yymm < FIRST_NEW_STYLE or not 1 <= int(yymm[2:]) <= 12 or len(digits) > width:
        return None
    number = digits.ljust(width, "0")
    return f"{yymm}.{number}" if int(number) else None


def normalize_ids(raw: pl.Series) -> pl.DataFrame:
    """``raw`` (any dtype: floats are what a round trip left) → ``id`` (null when flagged) and ``status``."""
    text = raw if raw.dtype == pl.String else raw.cast(pl.String)
    clean = text.str.contains(_CLEAN).fill_null(False)
    status_type = pl.Enum(STATUSES)
    if clean.all():
        return pl.DataFrame({"id": text, "status": pl.Series(["ok"] * len(text), dtype=status_type)})
    odd = text.filter(~clean).unique(maintain_order=True)
    fixed = [repair_id(value) for value in odd.to_list()]
    lookup = pl.DataFrame(
        {"raw": odd, "_id": [f[0] for f in fixed], "_status": [f[1] for f in fixed]},
        schema={"raw": pl.String, "_id": pl.String, "_status": pl.String},
    )
    frame = pl.DataFrame({"raw": text, "_clean": clean})
    joined = frame.join(lookup, on="raw", how="left", maintain_order="left", nulls_equal=True)
    return joined.select(
        pl.when("_clean").then(pl.col("raw")).otherwise(pl.col("_id")).alias("id"),
        pl.when("_clean").then(pl.lit("ok")).otherwise(pl.col("_status")).cast(status_type).alias("status"),
    )
