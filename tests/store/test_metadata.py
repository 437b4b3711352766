"""Metadata store upsert: one row per id, newest datestamp wins, tombstones, sorted, exact schema."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest
from support.builders import frame, row

from papersys.errors import StoreError
from papersys.store.layout import Layout
from papersys.store.metadata import METADATA_SCHEMA, clean_text, read_deletions, read_year, upsert


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout(tmp_path / "data")


def dels(*pairs: tuple[str, date]) -> pl.DataFrame:
    return pl.DataFrame({"id": [p[0] for p in pairs], "datestamp": [p[1] for p in pairs]})


def test_rows_land_in_their_first_submission_year_sorted_by_id(layout: Layout) -> None:
    result = upsert(layout, frame(row("2401.00002"), row("hep-th/9901001"), row("2401.00001"), row("0704.0001")))
    assert layout.metadata_years() == [1999, 2007, 2024]
    stored = read_year(layout, 2024)
    assert stored["id"].to_list() == ["2401.00001", "2401.00002"]
    assert dict(stored.schema) == dict(METADATA_SCHEMA)
    assert result.total("new") == 4
    assert {c.year: c.rows for c in result.years} == {1999: 1, 2007: 1, 2024: 2}


def test_newest_datestamp_wins_and_ties_take_the_incoming_row(layout: Layout) -> None:
    upsert(layout, frame(row("2401.00001", title="v1", datestamp=date(2024, 1, 5))))
    older = upsert(layout, frame(row("2401.00001", title="stale", datestamp=date(2024, 1, 4))))
    assert older.total("superseded") == 1 and older.total("updated") == 0
    tie = upsert(layout, frame(row("2401.00001", title="tie", datestamp=date(2024, 1, 5))))
    assert tie.total("updated") == 1
    newer = upsert(layout, frame(row("2401.00001", title="v2", datestamp=date(2024, 2, 1))))
    assert newer.total("updated") == 1
    assert read_year(layout, 2024)["title"].to_list() == ["v2"]


def test_within_one_batch_the_newest_copy_wins(layout: Layout) -> None:
    upsert(
        layout,
        frame(
            row("2401.00001", title="second", datestamp=date(2024, 1, 9)),
            row("2401.00001", title="first", datestamp=date(2024, 1, 3)),
            row("2401.00001", title="third, same day", datestamp=date(2024, 1, 9)),
        ),
    )
    assert read_year(layout, 2024)["title"].to_list() == ["third, same day"]


def test_restating_the_same_content_is_unchanged_and_does_not_rewrite(layout: Layout) -> None:
    upsert(layout, frame(row("2401.00001")))
    path = layout.metadata_file(2024)
    before = path.stat().st_mtime_ns
    again = upsert(layout, frame(row("2401.00001")))
    assert again.total("unchanged") == 1 and again.total("updated") == 0
    assert path.stat().st_mtime_ns == before


def test_deletion_removes_the_paper_and_blocks_older_copies(layout: Layout) -> None:
    upsert(layout, frame(row("2401.00001"), row("2401.00002")))
    result = upsert(layout, frame(), dels(("2401.00001", date(2024, 3, 1))))
    assert result.total("deleted") == 1
    assert read_year(layout, 2024)["id"].to_list() == ["2401.00002"]
    assert read_deletions(layout)["id"].to_list() == ["2401.00001"]
    # an older copy (e.g. from a snapshot) cannot resurrect it ...
    blocked = upsert(layout, frame(row("2401.00001", datestamp=date(2024, 2, 1), source="snapshot")))
    assert blocked.total("superseded") == 1
    assert read_year(layout, 2024)["id"].to_list() == ["2401.00002"]
    # ... but a genuinely newer record does
    back = upsert(layout, frame(row("2401.00001", datestamp=date(2024, 4, 1))))
    assert back.total("new") == 1


def test_deletion_older_than_the_stored_row_is_ignored(layout: Layout) -> None:
    upsert(layout, frame(row("2401.00001", datestamp=date(2024, 5, 1))))
    result = upsert(layout, frame(), dels(("2401.00001", date(2024, 4, 1))))
    assert result.total("deleted") == 0
    assert read_year(layout, 2024).height == 1


def test_dry_run_counts_but_writes_nothing(layout: Layout) -> None:
    result = upsert(layout, frame(row("2401.00001")), dels(("2401.00009", date(2024, 1, 1))), dry_run=True)
    assert result.total("new") == 1
    assert not layout.root.exists() or not any(layout.root.rglob("*.parquet"))


def test_a_foreign_parquet_file_is_refused_not_overwritten(layout: Layout) -> None:
    path = layout.metadata_file(2024)
    path.parent.mkdir(parents=True)
    pl.DataFrame({"id": ["2401.00001"], "x": [1]}).write_parquet(path)
    before = path.read_bytes()
    with pytest.raises(StoreError, match=r"2024\.parquet: is not a papersys metadata file"):
        upsert(layout, frame(row("2401.00002")))
    assert path.read_bytes() == before


def test_a_torn_parquet_file_is_a_store_error_with_a_hint(layout: Layout) -> None:
    upsert(layout, frame(row("2401.00001")))
    path = layout.metadata_file(2024)
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(StoreError, match="not a readable Parquet file.*restore it from a backup"):
        read_year(layout, 2024)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [("  A\n  title\twith\r\n breaks ", "A title with breaks"), ("x", "x"), ("\n\n", "")],
)
def test_clean_text(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean


def test_whitespace_set_is_pythons_and_the_vectorised_clean_text_agrees() -> None:
    import random

    from papersys.store.metadata import WHITESPACE, clean_text_expr

    assert "".join(c for c in map(chr, range(0x110000)) if c.isspace()) == WHITESPACE
    rng = random.Random(5)
    alphabet = [*WHITESPACE, *"ab\u00e9\u4e2d\U0001f600\u200b.", " ", " ", " "]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40))) for _ in range(20_000)]
    got = pl.DataFrame({"t": texts}).select(clean_text_expr("t"))["t"].to_list()
    assert got == [clean_text(t) for t in texts]
