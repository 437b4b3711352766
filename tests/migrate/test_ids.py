"""Legacy ids: version stripping, float round-trip repair where unambiguous, flagging (pure)."""

from __future__ import annotations

import polars as pl
import pytest

from papersys.migrate.ids import normalize_ids, repair_id


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2402.03300", ("2402.03300", "ok")),
        (" 2402.03300 ", ("2402.03300", "ok")),
        ("1412.1234", ("1412.1234", "ok")),
        ("hep-th/9901001", ("hep-th/9901001", "ok")),
        ("solv-int/9901001v2", ("solv-int/9901001", "versioned")),
        ("2402.03300v12", ("2402.03300", "versioned")),
        ("oai:arXiv.org:2402.03300v1", ("2402.03300", "versioned")),
        # a float kept the digits but dropped trailing zeros of the fraction / leading zeros of the yymm
        ("2402.033", ("2402.03300", "repaired")),
        ("2402.0331", ("2402.03310", "repaired")),  # valid to the store's loose check, not for its era
        ("1501.1", ("1501.10000", "repaired")),
        ("1401.123", ("1401.1230", "repaired")),
        ("704.001", ("0704.0010", "repaired")),
        ("912.5", ("0912.5000", "repaired")),
        # nothing a float could have made: flagged
        ("1401.12345", (None, "flagged")),  # five digits before 2015
        ("2402.0330000000001", (None, "flagged")),
        ("2413.001", (None, "flagged")),  # month 13
        ("0703.0001", (None, "flagged")),  # before new-style ids existed
        ("2402.0", (None, "flagged")),  # number 0
        ("12.5", (None, "flagged")),
        ("arXiv:2402.03300", (None, "flagged")),
        ("", (None, "flagged")),
        (None, (None, "flagged")),
    ],
)
def test_repair_id(raw: str | None, expected: tuple[str | None, str]) -> None:
    assert repair_id(raw) == expected


def test_normalize_ids_matches_repair_id_row_by_row() -> None:
    raw = [
        "2401.00001",
        "2401.00001v2",
        "2402.033",
        None,
        "junk",
        "hep-th/9901001",
        "2402.033",
        "1401.1234",
        "0703.0001",
        "0701.1234",
        "0704.0001",
        "0712.9999",
    ]  # new-style ids began in 0704
    out = normalize_ids(pl.Series(raw, dtype=pl.String))
    assert list(zip(out["id"].to_list(), out["status"].cast(pl.String).to_list(), strict=True)) == [
        repair_id(r) for r in raw
    ]


def test_a_float_id_column_is_read_as_its_shortest_text() -> None:
    out = normalize_ids(pl.Series([2402.033, 1501.00001, 704.0001, 2401.99999]))
    assert out["id"].to_list() == ["2402.03300", "1501.00001", "0704.0001", "2401.99999"]
    assert out["status"].cast(pl.String).to_list() == ["repaired", "ok", "repaired", "ok"]


def test_the_fast_path_keeps_clean_ids_untouched() -> None:
    out = normalize_ids(pl.Series(["2401.00001", "0704.0001", "math.AG/0101001"]))
    assert out["id"].to_list() == ["2401.00001", "0704.0001", "math.AG/0101001"]
    assert set(out["status"].cast(pl.String).to_list()) == {"ok"}
