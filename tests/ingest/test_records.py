"""arXiv field conventions → metadata values."""

from __future__ import annotations

from datetime import date

import pytest

from papersys.ingest.fields import (
    format_author,
    optional_text,
    parse_rfc2822_date,
    split_author_string,
    split_categories,
)


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        ("D.V. Shetty, S.J. Yennello, and G.A. Souliotis", ["D.V. Shetty", "S.J. Yennello", "G.A. Souliotis"]),
        ("A. One and B. Two", ["A. One", "B. Two"]),
        ("A. Smith (MIT), B. Jones (1) ((1) CERN)", ["A. Smith", "B. Jones"]),
        ("John Smith, Jr., Ann Lee", ["John Smith Jr.", "Ann Lee"]),
        ("The ATLAS Collaboration", ["The ATLAS Collaboration"]),
        ("Alexandra Andersson", ["Alexandra Andersson"]),  # 'and' inside a name is not a separator
        ("X. Y; Z. W & Q. R", ["X. Y", "Z. W", "Q. R"]),
        ("", []),
    ],
)
def test_split_author_string(raw: str, names: list[str]) -> None:
    assert split_author_string(raw) == names


def test_format_author_orders_forenames_keyname_suffix() -> None:
    assert format_author("King", "Martin Luther", "Jr") == "Martin Luther King Jr"
    assert format_author("Collaboration", None, None) == "Collaboration"
    assert format_author(" van der Berg ", " J.\n A. ") == "J. A. van der Berg"


def test_categories_keep_primary_first_and_drop_duplicates() -> None:
    assert split_categories("hep-th math-ph hep-th math.MP") == ["hep-th", "math-ph", "math.MP"]
    assert split_categories(None) == []


@pytest.mark.parametrize(
    ("raw", "day"),
    [
        ("Tue, 3 Apr 2007 22:04:11 GMT", date(2007, 4, 3)),
        ("Mon, 07 Oct 2024 10:45:05 GMT", date(2024, 10, 7)),
        ("7 Oct 2024 10:45:05 +0000", date(2024, 10, 7)),
    ],
)
def test_version_dates(raw: str, day: date) -> None:
    assert parse_rfc2822_date(raw) == day


def test_optional_text() -> None:
    assert optional_text("  a\n b ") == "a b"
    assert optional_text("   ") is None
    assert optional_text(None) is None
