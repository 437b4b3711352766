"""The field rules of the metadata schema, each written once: a scalar form per record (the tree walker, the
snapshot mapper) and, where the page fast path needs it, a polars form per column built from the same constants.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import date
from email.utils import parsedate_to_datetime

import polars as pl

from papersys.store.ids import id_expr, normalize_id, year_expr
from papersys.store.metadata import WHITESPACE, clean_text, clean_text_expr

__all__ = [
    "AUTHOR_PARTS",
    "ISO_DATE_FORMAT",
    "authors_expr",
    "categories_expr",
    "clean_text",
    "clean_text_expr",
    "first_and_last_version",
    "format_author",
    "has_required",
    "has_required_expr",
    "id_expr",
    "iso_date_expr",
    "malformed_iso_date_expr",
    "normalize_id",
    "optional_text",
    "optional_text_expr",
    "parse_iso_date",
    "parse_rfc2822_date",
    "primary_category",
    "primary_category_expr",
    "split_author_string",
    "split_categories",
    "valid_id_expr",
    "version_dates",
]

# ids ---------------------------------------------------------------------------------------------------
# normalize_id / id_expr (store.ids): trimmed, "oai:arXiv.org:" prefix and "vN" suffix stripped, validated.


def valid_id_expr(column: str | pl.Expr = "id") -> pl.Expr:
    """True where ``id_expr``'s result is a valid arXiv id (where ``normalize_id`` would not raise)."""
    return year_expr(column).is_not_null()


# text --------------------------------------------------------------------------------------------------
# clean_text / clean_text_expr (store.metadata): every whitespace run collapsed to one space, trimmed.
# Title and abstract are cleaned; the optional texts (doi, journal_ref, comments, license) also become null
# when nothing is left.


def optional_text(value: str | None) -> str | None:
    """Cleaned text, or None for missing/blank values."""
    if value is None:
        return None
    cleaned = clean_text(value)
    return cleaned or None


def optional_text_expr(column: str) -> pl.Expr:
    """``optional_text`` over a string column (named ``column``)."""
    cleaned = clean_text_expr(column)
    return pl.when(cleaned == "").then(None).otherwise(cleaned).alias(column)


# authors -----------------------------------------------------------------------------------------------
# One name is its parts in this order, joined by a space and cleaned ("Forenames Keyname Suffix"); a name
# left empty is dropped.
AUTHOR_PARTS = ("forenames", "keyname", "suffix")


def format_author(keyname: str | None, forenames: str | None = None, suffix: str | None = None) -> str:
    """arXiv's (keyname, forenames, suffix) → "Forenames Keyname Suffix" (in ``AUTHOR_PARTS`` order)."""
    # clean_text of the joined parts, inlined: one split over the three parts (hot in bulk loads)
    return " ".join(f"{forenames or ''} {keyname or ''} {suffix or ''}".split())


def authors_expr(column: str, *, author_sep: str, part_sep: str) -> pl.Expr:
    """``format_author`` over a column of author lists: each author's ``AUTHOR_PARTS`` joined by
    ``part_sep``, each author followed by ``author_sep`` → List(String), empty names dropped."""
    name = clean_text_expr(pl.element().str.replace_all(part_sep, " ", literal=True))
    return pl.col(column).str.split(author_sep).list.eval(name).list.eval(pl.element().filter(pl.element() != ""))


_SUFFIXES = frozenset({"jr", "jr.", "sr", "sr.", "ii", "iii", "iv", "v"})
_AND = re.compile(r"\s+and\s+|\s*&\s*|\s*;\s*")
_PARENS = re.compile(r"\([^()]*\)")


def split_author_string(authors: str) -> list[str]:
    """A single author string (arXivRaw; a snapshot line without ``authors_parsed``) → names: split on
    commas, ';', '&' and 'and'; drop affiliations. Scalar only: both OAI paths call it per record.

    ``"D.V. Shetty, S.J. Yennello, and G.A. Souliotis"`` → three names; ``"A. Smith (MIT), B. Jones"`` →
    ``["A. Smith", "B. Jones"]``; a lone ``Jr.`` after a comma stays with the name before it.
    """
    text = clean_text(authors)
    while True:  # affiliations may nest: "A (1), B (2) ((1) MIT, (2) CERN)"
        stripped = _PARENS.sub(" ", text)
        if stripped == text:
            break
        text = stripped
    names: list[str] = []
    for chunk in text.split(","):
        for piece in _AND.split(" " + chunk + " "):
            name = clean_text(piece)
            if name.lower().startswith("and "):
                name = name[4:].strip()
            if not name or name.lower() == "and":
                continue
            if name.lower() in _SUFFIXES and names:
                names[-1] = f"{names[-1]} {name}"
            else:
                names.append(name)
    return names


# categories --------------------------------------------------------------------------------------------
# Whitespace-separated, the first is the primary one, duplicates dropped (order kept).
_CATEGORY = "[^" + "".join(f"\\x{{{ord(c):x}}}" for c in WHITESPACE) + "]+"  # what str.split() yields


def split_categories(value: str | None) -> list[str]:
    """Space-separated categories, primary first, duplicates dropped (order kept)."""
    if not value:
        return []
    return list(dict.fromkeys(value.split()))


def categories_expr(column: str) -> pl.Expr:
    """``split_categories`` over a string column → List(String)."""
    return pl.col(column).str.extract_all(_CATEGORY).list.unique(maintain_order=True)


def primary_category(categories: Sequence[str]) -> str | None:
    return categories[0] if categories else None


def primary_category_expr(column: str = "categories") -> pl.Expr:
    return pl.col(column).list.first()


# dates -------------------------------------------------------------------------------------------------
# ISO dates (OAI datestamps, the arXiv format's created/updated, the snapshot's update_date): the first ten
# characters after trimming, exactly YYYY-MM-DD. The scalar form raises where the polars form gives null.
ISO_DATE_FORMAT = "%Y-%m-%d"
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_ISO_CHARS = 10
_MONTHS = {
    m: i
    for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)
}


def parse_iso_date(value: str | None) -> date | None:
    """``YYYY-MM-DD`` (longer timestamps are cut to their date part) → date; None when missing."""
    if not value:
        return None
    text = value.strip()[:_ISO_CHARS]
    if not _ISO_DATE.fullmatch(text):
        raise ValueError(f"not a YYYY-MM-DD date: {value!r}")
    return date.fromisoformat(text)


def iso_date_expr(column: str) -> pl.Expr:
    """``parse_iso_date`` over a string column; null where it would return None or raise."""
    text = pl.col(column).str.strip_chars(WHITESPACE).str.slice(0, _ISO_CHARS)
    return pl.when(text.str.contains(f"^{_ISO_DATE.pattern}$")).then(text.str.to_date(ISO_DATE_FORMAT, strict=False))


def malformed_iso_date_expr(column: str) -> pl.Expr:
    """True where ``parse_iso_date`` would raise: text present, but not a date."""
    return (pl.col(column) != "") & iso_date_expr(column).is_null()


def parse_rfc2822_date(value: str) -> date:
    """``Tue, 3 Apr 2007 22:04:11 GMT`` (legacy) or ``Mon, 07 Oct 2024 …`` (current) → its date."""
    parts = value.split()
    if len(parts) >= 4 and parts[2][:3].lower() in _MONTHS:
        try:
            return date(int(parts[3]), _MONTHS[parts[2][:3].lower()], int(parts[1]))
        except ValueError:
            pass
    return parsedate_to_datetime(value).date()


# created / updated from a version history (arXivRaw, the snapshot) --------------------------------------
# created = the date of the lowest-numbered version (v1); updated = that of the highest when there are
# several, else null (as in arXiv's own ``arXiv`` format). A version is numbered by its label "vN", else by
# its position (from 1); equal numbers keep their order. A version without a date (None) does not count.


def first_and_last_version(versions: Iterable[tuple[object, str | None]]) -> tuple[str, str | None] | None:
    """``(label, date text)`` pairs → the date texts of the first version and, when there are several, of the
    last; None when no version has a date.

    One pass, no sort: this runs once per snapshot line. It equals a stable sort by number: the first of
    the lowest-numbered versions in document order, the last of the highest-numbered ones."""
    first: tuple[int, str] | None = None
    last: tuple[int, str] | None = None
    dated = 0
    for position, (label, stamp) in enumerate(versions, start=1):
        if stamp is None:
            continue
        number = int(label[1:]) if isinstance(label, str) and label[1:].isdigit() else position
        if first is None or number < first[0]:
            first = (number, stamp)
        if last is None or number >= last[0]:
            last = (number, stamp)
        dated += 1
    if first is None or last is None:
        return None
    return first[1], last[1] if dated > 1 else None


def version_dates(versions: Iterable[tuple[object, str | None]]) -> tuple[date | None, date | None]:
    """``(label, RFC 2822 date)`` pairs → ``(created, updated)``; raises ValueError on an unparseable date."""
    chosen = first_and_last_version(versions)
    if chosen is None:
        return None, None
    first, last = chosen
    return parse_rfc2822_date(first), None if last is None else parse_rfc2822_date(last)


# required fields ---------------------------------------------------------------------------------------
# A record without a (cleaned) title or abstract, without categories or without a creation date is unusable.


def has_required(title: str, abstract: str, categories: Sequence[str], created: date | None) -> bool:
    return bool(title and abstract and categories and created is not None)


def has_required_expr(title: str, abstract: str, categories: str, created: str) -> pl.Expr:
    """``has_required`` over columns: cleaned title/abstract, categories list and created date."""
    return (
        (pl.col(title) != "")
        & (pl.col(abstract) != "")
        & (pl.col(categories).list.len() > 0)
        & pl.col(created).is_not_null()
    )
