"""``created`` is the first version's date everywhere: bounded by the id's month, the earliest ever stored
kept. Tested on the current endpoint's recording of 2511.23462 (``<created>`` three months after its id's
month) and on a legacy page holding a held submission (1501.03516, created ten months before its id)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl

from papersys.ingest.oai import parse_page
from papersys.ingest.parse import parse_page_records
from papersys.store.layout import Layout
from papersys.store.metadata import scan_all, upsert

OAI = Path(__file__).parents[1] / "fixtures" / "arxiv-real" / "oai"
NEW_ENDPOINT = OAI / "inspirehep__getrecord_arXiv_2511.23462_NEW_ENDPOINT.xml"
PHYSICS = OAI / "invenio-oaiharvester__listrecords_physics.xml"


def records(path: Path) -> pl.DataFrame:
    return parse_page_records(parse_page(path.read_bytes())).records


def created(layout: Layout) -> dict[str, date]:
    return dict(scan_all(layout).select("id", "created").collect().iter_rows())


def test_a_created_after_the_ids_month_is_bounded_and_the_earliest_date_is_kept(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    record = records(NEW_ENDPOINT)
    assert record["created"].to_list() == [date(2026, 2, 9)]  # what the endpoint says: not v1's date
    upsert(layout, record)
    assert created(layout) == {"2511.23462": date(2025, 11, 30)}  # v1 was announced in November 2025

    # v1's own date (arXivRaw's version history) is earlier still: it wins
    raw = record.with_columns(created=pl.lit(date(2025, 11, 27)), datestamp=pl.lit(date(2026, 2, 12)))
    upsert(layout, raw)
    assert created(layout) == {"2511.23462": date(2025, 11, 27)}

    # a newer record repeating the late <created> refreshes the rest, never moves created later
    again = record.with_columns(datestamp=pl.lit(date(2026, 3, 1)), title=pl.lit("Revised title"))
    result = upsert(layout, again)
    row = scan_all(layout).collect().row(0, named=True)
    assert result.total("updated") == 1 and row["title"] == "Revised title"
    assert row["created"] == date(2025, 11, 27)


def test_real_first_versions_are_left_alone_held_submissions_included(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    page = records(PHYSICS)
    assert page.height == 150
    upsert(layout, page)
    stored = created(layout)
    assert stored == dict(page.select("id", "created").iter_rows())  # the legacy endpoint's dates were v1's
    assert stored["1501.03516"] == date(2014, 3, 4)  # ten months before its id: a held submission, kept
