"""Embedding store: parts + year file read as one (latest written wins), compaction, dtypes, strictness."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from papersys.errors import StoreError
from papersys.store import embeddings as store
from papersys.store.embeddings import EmbeddingStore, Manifest
from papersys.store.layout import Layout

DIM = 4
T0 = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout(tmp_path / "data")


@pytest.fixture
def emb(layout: Layout) -> EmbeddingStore:
    return EmbeddingStore(layout, "m", DIM)


def rows(ids: list[str], value: float, at: datetime = T0, hash_: str = "h") -> pl.DataFrame:
    vectors = np.full((len(ids), DIM), value, dtype=np.float32)
    return pl.DataFrame(
        {"id": ids, "text_hash": [hash_] * len(ids), "vector": pl.Series(vectors), "embedded_at": [at] * len(ids)}
    )


def read(layout: Layout, *, valid_since: datetime | None = None, vectors: bool = True) -> pl.DataFrame:
    return EmbeddingStore(layout, "m", DIM, valid_since=valid_since).read(2024, vectors=vectors).sort("id")


def first_values(frame: pl.DataFrame) -> dict[str, float]:
    return {r["id"]: float(r["vector"][0]) for r in frame.iter_rows(named=True)}


def test_parts_override_the_year_file_and_later_parts_earlier_ones(layout: Layout, emb: EmbeddingStore) -> None:
    emb.write_part(2024, rows(["a", "b", "c"], 1.0))
    emb.compact(2024)
    emb.write_part(2024, rows(["b"], 2.0, T0 + timedelta(1)))
    emb.write_part(2024, rows(["b", "d"], 3.0, T0 + timedelta(2)))
    assert [p.name for p in emb.pending_parts(2024)] == ["2024-000001.parquet", "2024-000002.parquet"]
    frame = read(layout)
    assert first_values(frame) == {"a": 1.0, "b": 3.0, "c": 1.0, "d": 3.0}
    assert frame["valid"].all()
    assert store.stored_years(layout, "m") == [2024]


def test_compaction_merges_prunes_sorts_and_removes_parts(layout: Layout, emb: EmbeddingStore) -> None:
    emb.write_part(2024, rows(["c", "a"], 1.0))
    emb.write_part(2024, rows(["b", "gone"], 2.0))
    done = emb.compact(2024, keep_ids=pl.Series(["a", "b", "c"]))
    assert (done.rows, done.pruned, done.parts) == (3, 1, 2)
    assert store.pending_parts(layout, "m") == []
    on_disk = pl.read_parquet(layout.embedding_file("m", 2024))
    assert on_disk["id"].to_list() == ["a", "b", "c"]
    assert dict(on_disk.schema) == store.embedding_schema(DIM, "float32")


def test_kill_between_compaction_and_part_deletion_shows_no_duplicates(layout: Layout, emb: EmbeddingStore) -> None:
    part = emb.write_part(2024, rows(["a", "b"], 1.0))
    kept = part.read_bytes()
    emb.compact(2024)
    part.write_bytes(kept)  # as if the process died before unlinking the part
    frame = read(layout)
    assert frame["id"].to_list() == ["a", "b"]
    # and a later part still wins over both
    emb.write_part(2024, rows(["a"], 5.0))
    assert first_values(read(layout)) == {"a": 5.0, "b": 1.0}


def test_float16_storage_round_trips(layout: Layout) -> None:
    f16 = EmbeddingStore(layout, "m", DIM, "float16")
    f16.write_part(2024, rows(["a"], 0.1234))
    f16.compact(2024)
    assert pl.read_parquet_schema(layout.embedding_file("m", 2024))["vector"] == pl.Array(pl.Float16, DIM)
    frame = f16.read(2024)
    vec = frame["vector"].to_numpy()
    assert vec.dtype == np.float16
    assert np.allclose(vec.astype(np.float32), 0.1234, atol=1e-3)
    assert frame["valid"].to_list() == [True]


def test_invalid_vectors_are_flagged_not_dropped(layout: Layout, emb: EmbeddingStore) -> None:
    vectors = np.array([[1, 2, 3, 4], [np.nan, 1, 1, 1], [0, 0, 0, 0], [np.inf, 1, 1, 1]], dtype=np.float32)
    frame = pl.DataFrame(
        {"id": list("abcd"), "text_hash": ["h"] * 4, "vector": pl.Series(vectors), "embedded_at": [T0] * 4}
    )
    emb.write_part(2024, frame)
    assert dict(zip(*read(layout).select("id", "valid").to_dict(as_series=False).values(), strict=True)) == {
        "a": True,
        "b": False,
        "c": False,
        "d": False,
    }


def test_files_record_their_invalid_vectors_and_key_reads_trust_only_that(layout: Layout, emb: EmbeddingStore) -> None:
    """Gap detection reads keys only: a file that records 0 invalid vectors is not read past its keys; a file
    with invalid vectors, or without the record (written by another tool), still has every vector checked."""
    emb.write_part(2024, rows(["a", "b"], 1.0))
    (part,) = emb.pending_parts(2024)
    assert pl.read_parquet_metadata(part)[store.INVALID_ROWS_KEY] == "0"
    keys = read(layout, vectors=False)
    assert keys["valid"].to_list() == [True, True] and "vector" not in keys.columns

    emb.write_part(2024, rows(["c"], 0.0))  # all-zero: invalid, and recorded as such
    assert pl.read_parquet_metadata(emb.pending_parts(2024)[-1])[store.INVALID_ROWS_KEY] == "1"
    emb.compact(2024)
    year_file = layout.embedding_file("m", 2024)
    assert pl.read_parquet_metadata(year_file)[store.INVALID_ROWS_KEY] == "1"
    assert read(layout, vectors=False)["valid"].to_list() == [True, True, False]

    # the same rows rewritten by another tool (no record) with a NaN put in: found by reading the vectors
    foreign = pl.read_parquet(year_file).with_columns(
        pl.Series("vector", np.array([[np.nan, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1]], dtype=np.float32))
    )
    foreign.write_parquet(year_file)
    assert store.INVALID_ROWS_KEY not in pl.read_parquet_metadata(year_file)
    assert read(layout, vectors=False)["valid"].to_list() == [False, True, True]


def test_list_vectors_are_read_leniently_and_rewritten_canonically(layout: Layout, emb: EmbeddingStore) -> None:
    path = layout.embedding_file("m", 2024)
    path.parent.mkdir(parents=True)
    pl.DataFrame(
        {
            "id": ["a", "b", "c"],
            "text_hash": ["h"] * 3,
            "vector": [[1.0, 2.0, 3.0, 4.0], [1.0, 2.0], None],
            "embedded_at": [datetime(2024, 1, 1)] * 3,  # naive: read as UTC
        },
        schema_overrides={"vector": pl.List(pl.Float64)},
    ).write_parquet(path)
    frame = read(layout)
    assert frame["valid"].to_list() == [True, False, False]
    assert frame["embedded_at"].dtype == pl.Datetime("us", "UTC")
    emb.compact(2024)
    assert pl.read_parquet_schema(path)["vector"] == pl.Array(pl.Float32, DIM)


def test_fixed_width_other_than_the_manifest_dim_is_refused(layout: Layout) -> None:
    path = layout.embedding_file("m", 2024)
    path.parent.mkdir(parents=True)
    wide = np.ones((1, DIM + 1), dtype=np.float32)
    pl.DataFrame({"id": ["a"], "text_hash": ["h"], "vector": pl.Series(wide), "embedded_at": [T0]}).write_parquet(path)
    with pytest.raises(StoreError, match=r"2024\.parquet: vector column is Array\(Float32.*manifest says dim 4"):
        read(layout)
    # ...unless every row predates a re-embed (dim change in progress): then they read as invalid, unusable
    frame = read(layout, valid_since=T0 + timedelta(1))
    assert frame["valid"].to_list() == [False]
    assert frame["vector"].null_count() == 1


def test_unreadable_and_foreign_files_are_store_errors(layout: Layout) -> None:
    path = layout.embedding_file("m", 2024)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not parquet")
    with pytest.raises(StoreError, match="not a readable Parquet file"):
        read(layout)
    pl.DataFrame({"id": ["a"]}).write_parquet(path)
    with pytest.raises(StoreError, match="lacks text_hash, vector, embedded_at"):
        read(layout)


def test_no_files_read_as_an_empty_frame(layout: Layout) -> None:
    frame = read(layout)
    assert frame.height == 0
    assert frame.columns == ["id", "text_hash", "embedded_at", "valid", "vector"]
    assert read(layout, vectors=False).columns == ["id", "text_hash", "embedded_at", "valid"]


def test_manifest_round_trip_and_differences(layout: Layout) -> None:
    m = Manifest("x", "sentence_transformer", 4, "float32", True, "{title}\n{abstract}", "", 256, "0.1", T0, None)
    store.write_manifest(layout, "m", m)
    assert store.read_manifest(layout, "m") == m
    other = Manifest("y", "sentence_transformer", 8, "float32", True, "{title}", "", 256)
    assert m.differences(other) == [
        "name: stored 'x' != configured 'y'",
        "dim: stored 4 != configured 8",
        r"template: stored '{title}\n{abstract}' != configured '{title}'",
    ]
    layout.manifest_file("m").write_text('{"name": 1}')
    with pytest.raises(StoreError, match="not a papersys embedding manifest"):
        store.read_manifest(layout, "m")


def test_the_handle_lists_years_and_parts_and_signs_the_files_of_a_year(layout: Layout, emb: EmbeddingStore) -> None:
    assert emb.years() == emb.pending_years() == [] and emb.files_signature(2024) == []
    emb.write_part(2024, rows(["a"], 1.0))
    emb.write_part(2023, rows(["b"], 1.0))
    emb.compact(2023)
    assert emb.years() == [2023, 2024] and emb.pending_years() == [2024]
    before = emb.files_signature(2024)
    assert [name for name, *_ in before] == ["2024-000001.parquet"]
    emb.write_part(2024, rows(["c"], 1.0))
    assert emb.files_signature(2024) != before
    assert [name for name, *_ in emb.files_signature(2023)] == ["2023.parquet"]
    assert emb.manifest_file == layout.manifest_file("m") and emb.coverage_cache == layout.coverage_cache("m")
