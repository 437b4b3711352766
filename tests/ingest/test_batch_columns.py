"""MetadataBatch builds its list columns fast (join + split) yet exactly as polars' own conversion would."""

from __future__ import annotations

import random
from datetime import date

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from papersys.ingest.records import MetadataBatch
from papersys.store.metadata import conform

NAMES = ["A. B", "Søren Ødegård", "娜 李", "", "X", "van der Berg J."]


def slow_reference(batch: MetadataBatch) -> pl.DataFrame:
    """The straightforward row-by-row construction the fast path must reproduce."""
    return conform(
        pl.DataFrame(
            batch._cols,
            schema_overrides={
                "authors": pl.List(pl.String()), "categories": pl.List(pl.String()), "created": pl.Date(),
                "updated": pl.Date(), "datestamp": pl.Date(),
            },
            strict=False,
        )
    )  # fmt: skip


def fill(batch: MetadataBatch, rng: random.Random, n: int, extra: list[str] | None = None) -> None:
    for i in range(n):
        authors = [rng.choice(NAMES + (extra or [])) for _ in range(rng.randint(0, 4))]
        categories = [rng.choice(["cs.LG", "hep-th", "math.AG"]) for _ in range(rng.randint(0, 2))]
        batch.add(
            id=f"2401.{i:05d}", title="t", abstract="a", authors=authors, categories=categories,
            created=date(2024, 1, 1), updated=date(2024, 2, 1) if i % 2 else None, doi=None, journal_ref=None,
            comments=None, license=None, datestamp=date(2024, 2, 2), source="oai",
        )  # fmt: skip


@pytest.mark.parametrize("extra", [None, ["has\x1fseparator"]])
def test_list_columns_match_the_row_by_row_conversion(extra: list[str] | None) -> None:
    batch = MetadataBatch()
    fill(batch, random.Random(3), 2000, extra)
    frame = batch.records()
    assert_frame_equal(frame, slow_reference(batch))
    assert frame.filter(pl.col("authors").list.len() == 0).height > 0  # empty lists stay empty lists
    assert frame.filter(pl.col("categories").list.len() == 0)["primary_category"].null_count() > 0


def test_an_empty_batch_has_the_schema() -> None:
    assert_frame_equal(MetadataBatch().records(), slow_reference(MetadataBatch()))
