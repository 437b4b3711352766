"""One row per paper (pure): across every input, the newest copy of an id wins its metadata, and per model
the newest copy that carries that model's column wins its vector."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import polars as pl

_EMPTY_SCHEMA = {  # Winners.frame of no input (the win:<alias> flags are added per model)
    "input": pl.Int32,
    "row": pl.UInt32,
    "id": pl.String,
    "key": pl.Date,
    "year": pl.Int32,
    "erow": pl.UInt32,
    "win_meta": pl.Boolean,
}


@dataclass(frozen=True)
class Winners:
    """``frame``: every usable row (``input, row, id, key, year, erow``) with ``win_meta`` and ``win:<alias>``."""

    frame: pl.DataFrame
    duplicate_ids: int  # ids with more than one row
    duplicate_rows: int  # rows that won nothing

    def of_input(self, index: int) -> pl.DataFrame:
        return self.frame.filter(pl.col("input") == index)


def win_column(alias: str) -> str:
    return f"win:{alias}"


def pick_winners(keys: Sequence[pl.DataFrame], model_inputs: Mapping[str, Sequence[int]]) -> Winners:
    """``keys[i]`` are input ``i``'s rows; ``model_inputs[alias]`` the inputs holding that model's column.

    Newest ``key`` (updated / date) wins; on a tie the later input (newer year file), then the later row.
    """
    columns = ("row", "id", "key", "year", "erow")
    frames = [k.select(columns).with_columns(input=pl.lit(i, pl.Int32)) for i, k in enumerate(keys)]
    if not frames:
        empty = pl.DataFrame(schema=_EMPTY_SCHEMA)
        return Winners(empty.with_columns(pl.lit(False).alias(win_column(a)) for a in model_inputs), 0, 0)
    ordered = (
        pl.concat(frames, how="vertical_relaxed")
        .sort(["id", "key", "input", "row"])
        .with_row_index("_k")
        .with_columns(win_meta=pl.col("id").is_last_distinct())
    )
    flags = []
    for alias, inputs in model_inputs.items():
        holders = ordered.filter(pl.col("input").is_in(list(inputs)))
        won = holders.filter(pl.col("id").is_last_distinct())["_k"]
        flags.append(pl.col("_k").is_in(won.implode()).alias(win_column(alias)))
    ordered = ordered.with_columns(flags).drop("_k")
    any_win = pl.any_horizontal(["win_meta", *(win_column(a) for a in model_inputs)])
    counts = ordered.group_by("id").len()
    return Winners(
        ordered.sort(["input", "row"]),
        duplicate_ids=int((counts["len"] > 1).sum()),
        duplicate_rows=int(ordered.select((~any_win).sum()).item()),
    )
