"""Spool commit points for resumable writers: ``next_seq``, ``drop_from`` and ``merge(skip_years=…)``."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl

from papersys.ingest.records import MetadataBatch
from papersys.ingest.spool import Spool
from papersys.store.layout import Layout
from papersys.store.metadata import scan_all


def batch(*ids: str, stamp: date = date(2024, 1, 2)) -> pl.DataFrame:
    rows = MetadataBatch()
    for arxiv_id in ids:
        rows.add(
            id=arxiv_id, title=f"T {arxiv_id}", abstract="A", authors=["X Y"], categories=["cs.LG"],
            created=date(2024, 1, 1), updated=None, doi=None, journal_ref=None, comments=None, license=None,
            datestamp=stamp, source="snapshot",
        )  # fmt: skip
    return rows.records()


def test_parts_after_a_commit_point_are_dropped_and_numbering_resumes(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    assert spool.next_seq == 1
    spool.add(batch("2301.00001", "hep-th/9901001"))
    committed = spool.next_seq
    spool.add(batch("2301.00002", "2201.00002"))  # spooled, but the writer died before committing it
    reopened = Spool(tmp_path / "spool")
    assert reopened.next_seq == 3
    assert reopened.drop_from(committed) == 2  # both year parts of the uncommitted chunk
    assert reopened.next_seq == committed == 2
    spooled = pl.scan_parquet(tmp_path / "spool" / "[0-9]*" / "*.parquet").select(pl.len()).collect().item()
    assert spooled == 2
    reopened.add(batch("2301.00003"))
    assert sorted(p.name for p in (tmp_path / "spool" / "2023").iterdir()) == ["00000001.parquet", "00000002.parquet"]


def test_merge_skips_years_already_merged(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "data")
    spool = Spool(tmp_path / "spool")
    spool.add(batch("2301.00001", "2201.00001", "hep-th/9901001"))
    seen: list[int] = []
    result = spool.merge(layout, on_year=lambda change: seen.append(change.year), skip_years={2022})
    assert seen == [1999, 2023] == [c.year for c in result.years]
    assert sorted(scan_all(layout).collect()["id"].to_list()) == ["2301.00001", "hep-th/9901001"]
