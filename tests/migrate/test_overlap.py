"""Per-model winners across generations, and float16 storage of migrated vectors."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
from support.legacy import NOW, gen1_row, gen2_row, migrate, vec, write_gen1, write_gen2

from papersys.config import Config, ModelConfig
from papersys.embed.text import text_hash
from papersys.store import embeddings as store
from papersys.store.layout import Layout
from papersys.store.metadata import read_year


def test_a_newer_copy_without_a_model_does_not_drop_that_models_vector(tmp_path: Path) -> None:
    legacy = tmp_path / "legacy"
    # generation 1 has the newest copy of both papers, but only generation 2 has gemini vectors
    write_gen1(
        legacy / "2024.parquet",
        [
            gen1_row("2401.00001", abstract="Same text.", date="2024-06-01", jasper_v1=vec(1, 4)),
            gen1_row("2401.00002", abstract="Revised text.", date="2024-06-01", jasper_v1=vec(2, 4)),
        ],
        vectors={"jasper_v1": ("array", 4)},
    )
    write_gen2(
        legacy,
        2024,
        [gen2_row("2401.00001", abstract="Same  text."), gen2_row("2401.00002", abstract="First text.")],
        [("2401.00001", vec(3, 6)), ("2401.00002", vec(4, 6))],
        6,
    )
    config = Config(data_dir=tmp_path / "data")
    report = migrate(config, legacy)
    layout = Layout(config.data_dir)
    meta = read_year(layout, 2024).sort("id")
    assert meta["abstract"].to_list() == ["Same text.", "Revised text."]  # the newest copies
    assert meta["datestamp"].to_list() == [date(2024, 6, 1)] * 2
    gen2 = next(i for i in report.inputs if i.generation == 2)
    assert (gen2.metadata_rows, gen2.duplicates, gen2.vectors[0].new) == (0, 0, 2)
    rows = store.read_embeddings(layout, "gemini_embedding_001", 2024, dim=6).sort("id")
    # each vector is hashed with the text of its own copy: the unchanged paper is current, the revised stale
    assert rows["text_hash"].to_list() == [
        text_hash("Title of 2401.00001\nSame text."),
        text_hash("Title of 2401.00002\nFirst text."),
    ]
    gemini = next(m for m in report.models if m.alias == "gemini_embedding_001")
    assert (gemini.coverage.valid, gemini.coverage.stale) == (1, 1)
    assert report.duplicate_ids == 2 and report.duplicate_rows == 0


def test_float16_storage_of_a_configured_model(tmp_path: Path) -> None:
    legacy = tmp_path / "legacy"
    v = vec(7, 8)
    write_gen1(
        legacy / "2023.parquet",
        [gen1_row("2301.00001", jasper_v1=v), gen1_row("2301.00002", jasper_v1=[7e4, *v[1:]])],
        vectors={"jasper_v1": ("list", 8)},
    )
    model = ModelConfig(alias="jasper_v1", name="NovaSearch/jasper_en_vision_language_v1", dim=8, dtype="float16")
    config = Config(data_dir=tmp_path / "data", embedding={"models": (model,)})  # type: ignore[arg-type]
    report = migrate(config, legacy)
    counts = report.inputs[0].vectors[0]
    assert (counts.new, counts.inf) == (1, 1)  # 7e4 overflows float16
    layout = Layout(config.data_dir)
    assert pl.read_parquet_schema(layout.embedding_file("jasper_v1", 2023))["vector"] == pl.Array(pl.Float16, 8)
    rows = store.read_embeddings(layout, "jasper_v1", 2023, dim=8, dtype="float16")
    np.testing.assert_allclose(np.asarray(rows["vector"][0], dtype=np.float32), v, rtol=1e-3)
    assert rows["embedded_at"].to_list() == [NOW]


def test_a_kept_float16_manifest_keeps_float16_storage_when_the_model_is_not_configured(tmp_path: Path) -> None:
    legacy = tmp_path / "legacy"
    v = vec(7, 8)
    write_gen1(legacy / "2023.parquet", [gen1_row("2301.00001", jasper_v1=v)], vectors={"jasper_v1": ("list", 8)})
    model = ModelConfig(alias="jasper_v1", name="NovaSearch/jasper_en_vision_language_v1", dim=8, dtype="float16")
    migrate(Config(data_dir=tmp_path / "data", embedding={"models": (model,)}), legacy)  # type: ignore[arg-type]
    write_gen1(
        legacy / "2023.parquet",
        [gen1_row("2301.00001", jasper_v1=v), gen1_row("2301.00002", jasper_v1=v)],
        vectors={"jasper_v1": ("list", 8)},
    )
    migrate(Config(data_dir=tmp_path / "data", embedding={"models": ()}), legacy)  # type: ignore[arg-type]
    layout = Layout(tmp_path / "data")
    assert store.read_manifest(layout, "jasper_v1").dtype == "float16"  # type: ignore[union-attr]
    assert pl.read_parquet_schema(layout.embedding_file("jasper_v1", 2023))["vector"] == pl.Array(pl.Float16, 8)
