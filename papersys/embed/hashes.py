"""The text hashes of a year's papers, remembered between runs so that only changed texts are hashed again.

Gap detection needs the blake2b hash of every paper's current text, and a daily harvest touches many years:
hashing every text of each (a Python call per paper) cost more than embedding the day's papers with MiniLM.
Each year's hashes are kept with polars' 64-bit hash of the same text, which polars computes in bulk in
native code: a paper whose fast hash is unchanged keeps its remembered blake2b hash. polars guarantees its
hash only within one version, so the cache records the version and is ignored after an upgrade.
"""

from __future__ import annotations

import polars as pl

from papersys.embed.text import hash_texts
from papersys.store.atomic import write_parquet
from papersys.store.layout import Layout

_SEED = 0x5EED
_VERSION_KEY = "papersys.fast_hash"
_VERSION = f"polars {pl.__version__} seed {_SEED}"


def year_text_hashes(
    layout: Layout, alias: str, year: int, ids: pl.Series, texts: pl.Series, *, persist: bool = True
) -> pl.Series:
    """``hash_texts(texts)`` (the ``text_hash`` of each paper of ``ids``), computing only what the cache of
    ``alias`` and ``year`` lacks; the cache is rewritten when anything changed, unless ``persist`` is false."""
    fast = texts.hash(seed=_SEED).alias("fast")
    current = pl.DataFrame([ids.alias("id"), fast])
    remembered = _read(layout, alias, year)
    joined = current.join(remembered, on=["id", "fast"], how="left", maintain_order="left")
    missing = joined["text_hash"].is_null()
    if missing.any():
        joined = joined.with_columns(joined["text_hash"].scatter(missing.arg_true(), hash_texts(texts.filter(missing))))
    if persist and (missing.any() or remembered.height != joined.height):
        path = layout.text_hash_cache(alias, year)
        write_parquet(joined, path, compression="lz4", metadata={_VERSION_KEY: _VERSION})
    return joined["text_hash"]


def _read(layout: Layout, alias: str, year: int) -> pl.DataFrame:
    empty = pl.DataFrame(schema={"id": pl.String(), "fast": pl.UInt64(), "text_hash": pl.String()})
    path = layout.text_hash_cache(alias, year)
    try:
        if pl.read_parquet_metadata(path).get(_VERSION_KEY) != _VERSION:
            return empty
        frame = pl.read_parquet(path, columns=["id", "fast", "text_hash"])
    except Exception:  # a cache: a missing, torn or foreign file means computing the hashes, never an error
        return empty
    if dict(frame.schema) != dict(empty.schema):
        return empty
    return frame.unique(subset="id", keep="last")
