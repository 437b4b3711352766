"""Gap detection, one test per class, plus orphans, coverage counts and a re-embed cut-off."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from papersys.embed.gaps import Coverage, classify, coverage_of, orphan_ids

T0 = datetime(2024, 1, 1, tzinfo=UTC)
T1 = datetime(2024, 6, 1, tzinfo=UTC)


def expected(*pairs: tuple[str, str]) -> pl.DataFrame:
    return pl.DataFrame(
        {"id": [p[0] for p in pairs], "text_hash": [p[1] for p in pairs]},
        schema={"id": pl.String, "text_hash": pl.String},
    )


def stored(*rows: tuple[str, str | None, datetime, bool]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": [r[0] for r in rows],
            "text_hash": [r[1] for r in rows],
            "embedded_at": [r[2] for r in rows],
            "valid": [r[3] for r in rows],
        },
        schema={"id": pl.String, "text_hash": pl.String, "embedded_at": pl.Datetime("us", "UTC"), "valid": pl.Boolean},
    )


def status_of(exp: pl.DataFrame, sto: pl.DataFrame, **kw: object) -> dict[str, str]:
    out = classify(exp, sto, **kw)  # type: ignore[arg-type]
    return dict(zip(out["id"].to_list(), out["status"].cast(pl.String).to_list(), strict=True))


def test_missing_when_no_row() -> None:
    assert status_of(expected(("a", "h1"), ("b", "h2")), stored(("a", "h1", T0, True))) == {
        "a": "valid",
        "b": "missing",
    }


def test_stale_when_hash_differs_or_is_null() -> None:
    got = status_of(
        expected(("a", "h1"), ("b", "h2"), ("c", "h3")),
        stored(("a", "OLD", T0, True), ("b", None, T0, True), ("c", "h3", T0, True)),
    )
    assert got == {"a": "stale", "b": "stale", "c": "valid"}


def test_invalid_wins_over_stale_and_comes_from_the_valid_flag() -> None:
    got = status_of(expected(("a", "h1"), ("b", "h2")), stored(("a", "h1", T0, False), ("b", "OLD", T0, False)))
    assert got == {"a": "invalid", "b": "invalid"}


def test_rows_embedded_before_valid_since_are_stale() -> None:
    got = status_of(
        expected(("a", "h1"), ("b", "h2")), stored(("a", "h1", T0, True), ("b", "h2", T1, True)), valid_since=T1
    )
    assert got == {"a": "stale", "b": "valid"}


def test_extra_columns_pass_through_classification() -> None:
    exp = expected(("a", "h1"), ("b", "h2")).with_columns(text=pl.Series(["ta", "tb"]))
    classified = classify(exp, stored(("a", "h1", T0, True)))
    assert classified.select("id", "text", pl.col("status").cast(pl.String)).rows() == [
        ("a", "ta", "valid"),
        ("b", "tb", "missing"),
    ]


def test_orphans_and_coverage_counts() -> None:
    exp = expected(("a", "h1"), ("b", "h2"), ("c", "h3"), ("d", "h4"))
    sto = stored(("a", "h1", T0, True), ("b", "x", T0, True), ("c", "h3", T0, False), ("gone", "h", T0, True))
    orphans = orphan_ids(exp, sto)
    assert orphans.to_list() == ["gone"]
    cov = coverage_of(classify(exp, sto), orphans.len())
    assert cov == Coverage(papers=4, valid=1, missing=1, invalid=1, stale=1, orphans=1)
    assert cov.gaps == 3
    assert cov + cov == Coverage(papers=8, valid=2, missing=2, invalid=2, stale=2, orphans=2)


def test_empty_inputs() -> None:
    assert coverage_of(classify(expected(), stored())) == Coverage()
    assert classify(expected(("a", "h")), stored())["status"].to_list() == ["missing"]
