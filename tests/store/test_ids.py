"""The year rule and id normalisation (DESIGN §2): one rule, scalar and vectorised forms agree."""

from __future__ import annotations

import polars as pl
import pytest

from papersys.store.ids import InvalidIdError, normalize_id, paper_year, strip_version, year_expr

CASES = [
    ("0704.0001", 2007),  # first new-style id, 4 digits
    ("1412.9999", 2014),  # last year of 4-digit numbers
    ("1501.00001", 2015),  # 5 digits since 2015
    ("2401.12345", 2024),
    ("9912.12345", 2099),  # new style is always 20YY
    ("hep-th/9901001", 1999),
    ("solv-int/9901001", 1999),
    ("math.AG/0101001", 2001),
    ("cond-mat/0512345", 2005),
    ("astro-ph/9101001", 1991),  # arXiv's first year
    ("hep-th/0703999", 2007),
    ("q-bio.NC/0401001", 2004),
]


@pytest.mark.parametrize(("arxiv_id", "year"), CASES)
def test_paper_year(arxiv_id: str, year: int) -> None:
    assert paper_year(arxiv_id) == year


def test_vectorised_year_matches_scalar() -> None:
    ids = [i for i, _ in CASES] + ["not-an-id", "2401.123", "hep-th/99010"]
    years = pl.DataFrame({"id": ids}).select(year_expr("id"))["id"].to_list()
    assert years == [y for _, y in CASES] + [None, None, None]


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("2401.00001v3", "2401.00001"),
        ("solv-int/9901001v2", "solv-int/9901001"),  # split('v') would break this one
        ("oai:arXiv.org:hep-th/9901001", "hep-th/9901001"),
        ("oai:arXiv.org:0704.0001v12", "0704.0001"),
        ("  1501.00001 ", "1501.00001"),
        ("math.AG/0101001v1", "math.AG/0101001"),
    ],
)
def test_normalize_id(raw: str, clean: str) -> None:
    assert normalize_id(raw) == clean


def test_strip_version_only_strips_a_trailing_version() -> None:
    assert strip_version("solv-int/9901001") == "solv-int/9901001"
    assert strip_version("2401.00001v10") == "2401.00001"


@pytest.mark.parametrize("bad", ["", "2401", "2401.001", "2402.033", "hep-th", "HEP-TH/9901001", "2401.000001"])
def test_invalid_ids_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidIdError):
        normalize_id(bad)
    with pytest.raises(InvalidIdError):
        paper_year(bad)


def test_vectorised_id_normalisation_matches_normalize_id() -> None:
    from papersys.store.ids import id_expr

    raws = ["2401.00001v3", "solv-int/9901001v2", "oai:arXiv.org:hep-th/9901001", " 1501.00001 ", "math.AG/0101001v1"]
    got = pl.DataFrame({"raw": raws}).select(id_expr("raw"))["raw"].to_list()
    assert got == [normalize_id(r) for r in raws]
