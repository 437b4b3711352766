"""Vector classification, unit-norm detection and the write decision (pure)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from papersys.migrate.vectors import INF, NAN, NULL, VALID, WRONG_DIM, ZERO, classify_vectors, decide, is_unit_norm

ROWS = [[1.0, 2.0, 2.0], None, [0.0, 0.0, 0.0], [math.nan] * 3, [1.0, math.nan, 0.0], [1.0, math.inf, 0.0],
        [3.0, 4.0, 0.0]]  # fmt: skip
CODES = [VALID, NULL, ZERO, NAN, NAN, INF, VALID]


@pytest.mark.parametrize("dtype", [pl.Array(pl.Float32, 3), pl.List(pl.Float32), pl.List(pl.Float64)])
def test_classes_for_both_vector_dtypes(dtype: pl.DataType) -> None:
    codes, matrix = classify_vectors(pl.Series("v", ROWS, dtype=dtype), 3)
    assert codes.tolist() == CODES
    np.testing.assert_array_equal(matrix, np.array([[1, 2, 2], [3, 4, 0]], dtype=np.float32))
    assert matrix.dtype == np.float32


def test_wrong_lengths_and_a_whole_column_of_the_wrong_width() -> None:
    listed = pl.Series("v", [[1.0, 2.0], [1.0, 2.0, 3.0], [], None], dtype=pl.List(pl.Float32))
    codes, matrix = classify_vectors(listed, 3)
    assert codes.tolist() == [WRONG_DIM, VALID, WRONG_DIM, NULL] and matrix.shape == (1, 3)
    fixed = pl.Series("v", [[1.0, 2.0], None], dtype=pl.Array(pl.Float32, 2))
    codes, matrix = classify_vectors(fixed, 3)
    assert codes.tolist() == [WRONG_DIM, NULL] and matrix.shape == (0, 3)


def test_null_elements_read_as_nan_and_float16_overflow_as_inf() -> None:
    codes, _ = classify_vectors(pl.Series("v", [[1.0, None, 2.0]], dtype=pl.List(pl.Float32)), 3)
    assert codes.tolist() == [NAN]
    big = pl.Series("v", [[1e6, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype=pl.Array(pl.Float32, 3))
    assert classify_vectors(big, 3, "float16")[0].tolist() == [INF, VALID]
    assert classify_vectors(big, 3, "float32")[0].tolist() == [VALID, VALID]


def test_unit_norm() -> None:
    unit = np.eye(3, dtype=np.float32)
    assert is_unit_norm(unit) is True
    assert is_unit_norm(unit * 2) is False
    assert is_unit_norm(np.empty((0, 3), dtype=np.float32)) is None


def test_decide_every_case() -> None:
    candidates = pl.DataFrame({"id": list("abcdefg"), "text_hash": ["h1", "h1", "h1", "h1", "old", "h1", "h1"]})
    current = pl.DataFrame({"id": list("abcdef"), "current_hash": ["h1", "h1", "h1", "h2", "h1", "h1"]})
    stored = pl.DataFrame(
        {"id": ["b", "c", "d", "e", "f"], "text_hash": ["x", "h1", "h2", "h1", "old"],
         "valid": [False, True, True, True, True]},
    )  # fmt: skip
    assert decide(candidates, stored, current).to_list() == [
        "new",  # a: nothing stored
        "replaced",  # b: the stored vector is invalid
        "unchanged",  # c: the very same text: a rerun
        "kept",  # d: the store's vector is current, the legacy one stale
        "kept",  # e: the store's vector is current and the legacy one is not
        "replaced",  # f: the store's vector is stale, the legacy one current
        "no_metadata",  # g: no metadata (deleted)
    ]
