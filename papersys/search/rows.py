"""The row files of a vector index generation: one append-only binary file per column, a row per vector.

Row ``r`` is the vector index's key ``r``. Files only grow (a replaced or deleted paper's row is marked
dead, never rewritten), so a reader that maps the first ``rows`` rows named by the manifest never sees a
write in progress, and a writer killed mid-append leaves bytes past ``rows`` that the next writer cuts off.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from papersys.errors import StoreError
from papersys.store.atomic import fsync_path

ID_BYTES = 24  # the longest arXiv id, "patt-sol/9901001", has 16 characters
NO_DATE = np.iinfo(np.int32).min  # a paper whose first-version date is unknown matches no date filter

# column → dtype of one row's entry; "cats" has ``ncat`` entries per row (the others one each)
SCALAR_COLUMNS: dict[str, np.dtype[Any]] = {
    "ids": np.dtype(f"S{ID_BYTES}"),
    "year": np.dtype("<i2"),  # the paper's year (the year rule): an update re-reads only changed years
    "stamp": np.dtype("<i8"),  # embedded_at in microseconds: a different stamp means a re-embedded vector
    "created": np.dtype("<i4"),  # first-version date, days since 1970-01-01
    "ncat": np.dtype("<u1"),
}
CATEGORY_CODE = np.dtype("<u2")


def vector_dtype() -> np.dtype[np.float32]:
    return np.dtype("<f4")


@dataclass(frozen=True)
class RowBatch:
    """Rows to append: the arrays of every scalar column, the flattened category codes, the vectors."""

    columns: Mapping[str, npt.NDArray[Any]]
    cats: npt.NDArray[np.uint16]
    vectors: npt.NDArray[np.float32]

    def __len__(self) -> int:
        return len(self.vectors)


@dataclass(frozen=True)
class RowCounts:
    """How much of each file the manifest vouches for."""

    rows: int
    codes: int


class RowFiles:
    """The files of one generation: ``paths[column]`` for every scalar column, ``cats`` and ``vectors``."""

    def __init__(self, paths: Mapping[str, Path], dim: int) -> None:
        self.paths = dict(paths)
        self.dim = dim

    def _dtype(self, column: str) -> np.dtype[Any]:
        if column == "cats":
            return CATEGORY_CODE
        if column == "vectors":
            return vector_dtype()
        return SCALAR_COLUMNS[column]

    def _width(self, column: str) -> int:
        return self.dim if column == "vectors" else 1

    def _bytes(self, column: str, count: int) -> int:
        return count * self._width(column) * self._dtype(column).itemsize

    # reading -----------------------------------------------------------------------------------------
    def open(self, counts: RowCounts) -> dict[str, npt.NDArray[Any]]:
        """Memory-map the vouched-for part of every file (read-only)."""
        arrays: dict[str, npt.NDArray[Any]] = {}
        for column, path in self.paths.items():
            count = counts.codes if column == "cats" else counts.rows
            shape: tuple[int, ...] = (count, self.dim) if column == "vectors" else (count,)
            if count == 0:
                arrays[column] = np.empty(shape, dtype=self._dtype(column))
                continue
            size = path.stat().st_size
            if size < self._bytes(column, count):
                raise StoreError(path, f"holds {size} bytes, the index manifest needs {self._bytes(column, count)}")
            arrays[column] = np.memmap(path, dtype=self._dtype(column), mode="r", shape=shape)
        return arrays

    # writing -----------------------------------------------------------------------------------------
    def cut(self, counts: RowCounts) -> None:
        """Cut every file back to what the manifest vouches for (the bytes a killed writer left)."""
        for column, path in self.paths.items():
            want = self._bytes(column, counts.codes if column == "cats" else counts.rows)
            if not path.exists():
                if want:
                    raise StoreError(path, "is missing; rebuild the index with `papersys index --rebuild`")
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
                continue
            if path.stat().st_size != want:
                with path.open("r+b") as fh:
                    fh.truncate(want)

    def append(self, batch: RowBatch) -> None:
        """Append ``batch`` to every file and fsync them (the manifest, written after, commits them)."""
        parts: dict[str, npt.NDArray[Any]] = dict(batch.columns)
        parts["cats"] = batch.cats
        parts["vectors"] = batch.vectors
        for column, path in self.paths.items():
            data = np.ascontiguousarray(parts[column], dtype=self._dtype(column))
            with path.open("ab") as fh:
                fh.write(data.tobytes())
                fh.flush()
                os.fsync(fh.fileno())
        if self.paths:
            fsync_path(next(iter(self.paths.values())).parent)
