"""Legacy vectors (pure): sort a batch into valid / null / zero / NaN / inf / wrong-dim, tell whether they
are unit length, and decide per paper whether a valid migrated vector goes into the store."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
import polars as pl

VALID, NULL, ZERO, NAN, INF, WRONG_DIM = range(6)
CLASS_NAMES = {NULL: "null", ZERO: "zero", NAN: "nan", INF: "inf", WRONG_DIM: "wrong_dim"}
UNIT_NORM_SAMPLE = 1000
UNIT_NORM_TOLERANCE = 1e-3

Matrix = npt.NDArray[np.float32]
Codes = npt.NDArray[np.int8]


def classify_vectors(vectors: pl.Series, dim: int, storage: str = "float32") -> tuple[Codes, Matrix]:
    """A class code per row, and the float32 matrix of the VALID rows (in row order).

    Precedence: null, wrong length, any NaN, any ±inf (also after a cast to float16 storage), all zero.
    Null elements inside a vector read as NaN.
    """
    n = len(vectors)
    codes = np.full(n, VALID, dtype=np.int8)
    null = vectors.is_null().to_numpy()
    dtype = vectors.dtype
    if isinstance(dtype, pl.Array):
        right = np.full(n, dtype.size == dim)
    else:
        right = (vectors.list.len() == dim).fill_null(False).to_numpy()
    codes[~right] = WRONG_DIM
    codes[null] = NULL
    ok = ~null & right
    picked = vectors.filter(pl.Series(ok))
    if isinstance(dtype, pl.Array):
        fixed = picked.cast(pl.Array(pl.Float32, dim))
    else:
        fixed = picked.cast(pl.List(pl.Float32)).list.to_array(dim)
    matrix = np.ascontiguousarray(fixed.to_numpy(), dtype=np.float32).reshape(len(fixed), dim)
    nan = np.isnan(matrix).any(axis=1)
    inf = ~nan & np.isinf(matrix).any(axis=1)
    if storage == "float16":
        with np.errstate(over="ignore"):  # the overflow is what is being detected
            inf |= ~nan & ~np.isfinite(matrix.astype(np.float16)).all(axis=1)
    zero = ~nan & ~inf & ~(matrix != 0).any(axis=1)
    sub = np.select([nan, inf, zero], [NAN, INF, ZERO], VALID).astype(np.int8)
    codes[ok] = sub
    return codes, matrix[sub == VALID]


def class_counts(codes: Codes) -> dict[str, int]:
    counts = np.bincount(codes, minlength=len(CLASS_NAMES) + 1)
    return {name: int(counts[code]) for code, name in CLASS_NAMES.items()}


def is_unit_norm(matrix: Matrix) -> bool | None:
    """Whether the first vectors are L2-normalised (median deviation of the norm); None without any."""
    sample = matrix[:UNIT_NORM_SAMPLE]
    if not len(sample):
        return None
    norms = np.linalg.norm(sample.astype(np.float64), axis=1)
    return bool(np.median(np.abs(norms - 1.0)) < UNIT_NORM_TOLERANCE)


def decide(candidates: pl.DataFrame, stored: pl.DataFrame, current: pl.DataFrame) -> pl.Series:
    """Per valid migrated vector (``id, text_hash``): ``new``, ``replaced``, ``unchanged``, ``kept`` or ``no_metadata``.

    ``stored`` (``id, text_hash, valid``; one row per id; a hash of null means stale) is the store before this
    run; ``current`` (``id, current_hash``) the hash of the text the paper's metadata renders to after it.
    A migrated vector never replaces a valid one that is as current as itself, so reruns write nothing and
    vectors autopatch made from newer text survive.
    """
    right = stored.select("id", pl.col("text_hash").alias("_stored"), pl.col("valid").alias("_valid"))
    joined = candidates.join(current, on="id", how="left", maintain_order="left").join(
        right, on="id", how="left", maintain_order="left"
    )
    action = (
        pl.when(pl.col("current_hash").is_null())
        .then(pl.lit("no_metadata"))
        .when(pl.col("_valid").is_null())
        .then(pl.lit("new"))
        .when(~pl.col("_valid"))
        .then(pl.lit("replaced"))
        .when(pl.col("_stored").eq_missing(pl.col("text_hash")))
        .then(pl.lit("unchanged"))
        .when(pl.col("_stored").ne_missing(pl.col("current_hash")) & (pl.col("text_hash") == pl.col("current_hash")))
        .then(pl.lit("replaced"))
        .otherwise(pl.lit("kept"))
    )
    return joined.select(action.alias("action")).to_series()


def action_counts(actions: pl.Series) -> Mapping[str, int]:
    return {str(k): int(v) for k, v in actions.value_counts().iter_rows()}
