"""An on-disk spool of parsed records, partitioned by year, merged into the store in one pass per year.

Harvest pages and snapshot chunks land here first, so a long run never rewrites the store per page;
``merge`` then upserts each year once. Parts are written atomically, so a killed run leaves a spool
whose every part is complete.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Final

import polars as pl

from papersys.store.atomic import write_parquet
from papersys.store.ids import year_expr
from papersys.store.layout import Layout
from papersys.store.metadata import (
    DELETION_SCHEMA,
    UpsertResult,
    YearChange,
    conform,
    empty_metadata,
    record_tombstones,
    upsert,
)
from papersys.store.storage import storage_guard

# spool parts live for one window: lz4 writes several times faster than zstd and still halves the text
SPOOL_CODEC: Final = "lz4"


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        with storage_guard(directory, "create the spool"):
            directory.mkdir(parents=True, exist_ok=True)
        seqs = (Layout.spool_part_seq(part) for part in Layout.spool_parts(directory))
        self._seq = 1 + max((seq for seq in seqs if seq is not None), default=0)

    def add(self, records: pl.DataFrame, deletions: pl.DataFrame | None = None) -> None:
        """Spool one page/chunk: records split by paper year, deletions apart. Rows need valid ids."""
        seq = self._seq
        self._seq += 1
        try:
            if records.height:
                with_year = conform(records).with_columns(_year=year_expr("id"))
                for (year,), part in with_year.partition_by("_year", as_dict=True).items():
                    path = Layout.spool_part(self.directory, str(year), seq)
                    write_parquet(part.drop("_year"), path, compression=SPOOL_CODEC)
            if deletions is not None and deletions.height:
                path = Layout.spool_part(self.directory, Layout.SPOOL_DELETIONS, seq)
                write_parquet(deletions.select(list(DELETION_SCHEMA)), path)
        except Exception:  # a full disk: the parts of this page/chunk that did land go, so it is all or nothing
            with contextlib.suppress(OSError):
                self.drop_from(seq)
            raise

    @property
    def next_seq(self) -> int:
        """Sequence number the next ``add`` will use (a resumable writer records it as its commit point)."""
        return self._seq

    def drop_from(self, seq: int) -> int:
        """Delete parts numbered ``seq`` or later (spooled after the caller's last commit point)."""
        dropped = 0
        for part in Layout.spool_parts(self.directory):
            number = Layout.spool_part_seq(part)
            if number is not None and number >= seq:
                part.unlink()
                dropped += 1
        self._seq = max(seq, 1)
        return dropped

    def years(self) -> list[int]:
        return Layout.spool_years(self.directory)

    def _read(self, sub: str) -> pl.DataFrame | None:
        parts = Layout.spool_parts(self.directory, sub)
        if not parts:
            return None
        # the order of parts is the order of arrival: upsert keeps the last of equal datestamps
        return pl.concat([pl.read_parquet(p) for p in parts], how="vertical")

    def merge(
        self,
        layout: Layout,
        *,
        dry_run: bool = False,
        on_year: Callable[[YearChange], None] | None = None,
        skip_years: Collection[int] = (),
    ) -> UpsertResult:
        """Upsert everything spooled into the store, one year at a time (memory ~ one year).

        ``skip_years`` are left out (a resumed merge passes the years it already merged).
        """
        deletions = self._read(Layout.SPOOL_DELETIONS)
        tombstones = record_tombstones(layout, deletions, dry_run=dry_run)  # read and saved once
        del_years: dict[int, pl.DataFrame] = {}
        if deletions is not None:
            with_year = deletions.with_columns(_year=year_expr("id")).filter(pl.col("_year").is_not_null())
            del_years = {y: part.drop("_year") for (y,), part in with_year.partition_by("_year", as_dict=True).items()}
        changes: list[YearChange] = []
        for year in sorted((set(self.years()) | set(del_years)) - set(skip_years)):
            records = self._read(str(year))
            if records is None:
                records = empty_metadata()
            empty = pl.DataFrame(schema=dict(DELETION_SCHEMA))
            result = upsert(layout, records, del_years.get(year, empty), dry_run=dry_run, tombstones=tombstones)
            for change in result.years:
                changes.append(change)
                if on_year:
                    on_year(change)
        return UpsertResult(tuple(changes))

    def clear(self) -> None:
        """Remove the spool; parts added afterwards are numbered afresh from 1."""
        shutil.rmtree(self.directory, ignore_errors=True)
        self._seq = 1
