"""The migration end to end on real Parquet fixtures (tests/support/legacy.py ``build_fixture``).

Rows and their fates (jasper_v1 dim 8 / conan_v1 dim 12 / gen 2 embedding dim 6):

    file          id                 jasper     conan      fate
    2023 (A/L)    2301.00001         ok         ok         newlines + double spaces in title/abstract
                  2301.00002v2       ok         ok         version stripped
                  2301.00003         null       ok         older copy: 2022's row (date 2023-05-01) wins
                  2301.00004         zero       NaN
                  2301.033           NaN        len 10     float damage -> 2301.03300
                  junk               ok         ok         flagged, skipped
                  2212.00009         inf        ok         newest copy (2023-01-05), filed under 2022
                  2301.00008         null       null
                  2301.00010         ok         ok
                  2301.00011         ok         ok         no date at all: skipped
    2022 (L/A)    2301.00003         ok         ok         wins, filed under 2023
                  2212.00009         ok         ok         older copy (2022-12-20): dropped
                  2201.00001         ok         ok         categories with a repeat
                  2203.00003         len 6      ok
                  hep-th/0601001v1   ok         ok         old style, versioned, filed under 2006
    2021                                                   lacks title: unusable
    2020                                                   not Parquet: unusable
    gen2/2024     2401.00001 ok, 2401.00002 zero, 2401.00003 no vector row, 2401.00040 (vector id float
                  2401.0004, repaired) ok, 2401.00005 NaN; vector row 2401.99999 without metadata
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from support.builders import frame, row
from support.legacy import DIMS, GAPS, NOW, build_fixture, checksums, migrate

from papersys.config import Config, ModelConfig
from papersys.embed.text import text_hash
from papersys.migrate.report import MigrationReport
from papersys.store import embeddings as store
from papersys.store.embeddings import EmbeddingStore
from papersys.store.layout import Layout
from papersys.store.metadata import clean_text, read_year, upsert


@pytest.fixture
def legacy(tmp_path: Path) -> tuple[Path, dict[str, dict[str, list[float]]]]:
    root = tmp_path / "legacy"
    return root, build_fixture(root)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config(data_dir=tmp_path / "data")


def by_file(report: MigrationReport) -> dict[str, dict[str, object]]:
    return {i.file: i.to_dict() for i in report.inputs}


def test_report_counts_every_poison_exactly(config: Config, legacy: tuple[Path, dict]) -> None:
    report = migrate(config, legacy[0])
    inputs = by_file(report)
    assert list(inputs) == [
        "2020.parquet",
        "2021.parquet",
        "2022.parquet",
        "2023.parquet",
        "gen2/metadata_2024.parquet",
    ]
    assert [i.file for i in report.unusable] == ["2020.parquet", "2021.parquet"]
    assert inputs["2021.parquet"]["problems"] == ["2021.parquet: lacks column 'title'"]
    assert "not a readable Parquet file" in inputs["2020.parquet"]["problems"][0]  # type: ignore[index]
    assert report.ignored == ("notes.parquet",)

    y23 = inputs["2023.parquet"]
    assert y23["ids"] == {
        "rows": 10, "versioned": 1, "repaired": 1, "flagged": 1,
        "samples": [{"raw": "2301.033", "id": "2301.03300"}, {"raw": "junk", "id": None}],
    }  # fmt: skip
    assert (y23["rows"], y23["no_date"], y23["duplicates"], y23["metadata_rows"], y23["moved"]) == (10, 1, 1, 7, 1)
    assert y23["whitespace_only"] == 1
    jasper, conan = y23["vectors"]["jasper_v1"], y23["vectors"]["conan_v1"]  # type: ignore[index]
    assert {k: jasper[k] for k in ("rows", "null", "zero", "nan", "inf", "wrong_dim", "new")} == {
        "rows": 7, "null": 1, "zero": 1, "nan": 1, "inf": 1, "wrong_dim": 0, "new": 3,
    }  # fmt: skip
    assert {k: conan[k] for k in ("rows", "null", "zero", "nan", "inf", "wrong_dim", "new")} == {
        "rows": 7, "null": 1, "zero": 0, "nan": 1, "inf": 0, "wrong_dim": 1, "new": 4,
    }  # fmt: skip
    assert jasper["dtype"].startswith("Array") and conan["dtype"].startswith("List")

    y22 = inputs["2022.parquet"]
    assert (y22["rows"], y22["duplicates"], y22["metadata_rows"], y22["moved"]) == (5, 1, 4, 2)
    assert y22["ids"]["versioned"] == 1  # type: ignore[index]
    assert y22["vectors"]["jasper_v1"]["wrong_dim"] == 1 and y22["vectors"]["jasper_v1"]["new"] == 3  # type: ignore[index]
    assert y22["vectors"]["conan_v1"]["new"] == 4  # type: ignore[index]

    g2 = inputs["gen2/metadata_2024.parquet"]
    assert g2["vectors_file"] == "gen2/embedding_2024.parquet"
    assert (g2["rows"], g2["vector_rows"], g2["vectors_without_metadata"]) == (5, 5, 1)
    assert g2["vector_ids"]["repaired"] == 1 and g2["vector_ids"]["samples"] == [  # type: ignore[index]
        {"raw": "2401.0004", "id": "2401.00040"}
    ]
    gem = g2["vectors"]["gemini_embedding_001"]  # type: ignore[index]
    assert (gem["rows"], gem["null"], gem["zero"], gem["nan"], gem["new"]) == (5, 1, 1, 1, 2)

    assert (report.duplicate_ids, report.duplicate_rows) == (2, 2)
    assert report.metadata == {
        2006: {"new": 1, "updated": 0, "unchanged": 0, "superseded": 0},
        2022: {"new": 3, "updated": 0, "unchanged": 0, "superseded": 0},
        2023: {"new": 7, "updated": 0, "unchanged": 0, "superseded": 0},
        2024: {"new": 5, "updated": 0, "unchanged": 0, "superseded": 0},
    }
    models = {m.alias: m for m in report.models}
    assert {a: m.dim for a, m in models.items()} == DIMS
    assert models["jasper_v1"].lengths == {8: 14, 6: 1} and models["conan_v1"].lengths == {12: 13, 10: 1}
    assert {a: (m.unit_norm, m.normalize, m.manifest, m.configured) for a, m in models.items()} == {
        "jasper_v1": (True, True, "created", False),
        "conan_v1": (False, False, "created", False),
        "gemini_embedding_001": (True, True, "created", False),
    }
    assert {a: m.total("new") for a, m in models.items()} == {"jasper_v1": 6, "conan_v1": 8, "gemini_embedding_001": 2}
    for alias, model in models.items():  # the gaps left: the poisoned rows and the other generation's papers
        assert model.coverage.gaps == model.coverage.missing == len(GAPS[alias])
        assert sorted(model.years) == [2006, 2022, 2023, 2024]
        assert model.coverage.papers == 16 and model.coverage.valid == 16 - len(GAPS[alias])
    assert models["jasper_v1"].years[2022].coverage.missing == 2
    assert models["jasper_v1"].years[2024].coverage.missing == 5 and models["jasper_v1"].years[2024].new == 0
    assert 'template = "{title}\\n{abstract}"' in models["conan_v1"].config_block
    assert report.new == 16 + 6 + 8 + 2
    assert report.counts()["vectors_wrong_dim"] == 2 and report.counts()["unusable"] == 2


def test_store_holds_exactly_the_valid_winning_rows(config: Config, legacy: tuple[Path, dict]) -> None:
    legacy_dir, expected = legacy
    migrate(config, legacy_dir)
    layout = Layout(config.data_dir)
    assert layout.metadata_years() == [2006, 2022, 2023, 2024]
    y23 = read_year(layout, 2023).sort("id")
    assert y23["id"].to_list() == [
        "2301.00001", "2301.00002", "2301.00003", "2301.00004", "2301.00008", "2301.00010", "2301.03300",
    ]  # fmt: skip
    first = y23.row(0, named=True)
    assert (first["title"], first["abstract"], first["authors"]) == (
        "Deep Learning", "We study things.", ["Ada Lovelace", "Alan Turing"],
    )  # fmt: skip
    assert (first["source"], first["datestamp"], first["created"], first["primary_category"]) == (
        "legacy", date(2023, 1, 2), date(2023, 1, 2), "cs.LG",
    )  # fmt: skip
    assert first["doi"] is None and first["comments"] is None
    k = y23.filter(pl.col("id") == "2301.00003").row(0, named=True)
    assert k["datestamp"] == date(2023, 5, 1) and k["updated"] == date(2023, 5, 1)
    assert y23.filter(pl.col("id") == "2301.00008")["license"].item().startswith("http://creativecommons")
    y22 = read_year(layout, 2022).sort("id")
    assert y22["id"].to_list() == ["2201.00001", "2203.00003", "2212.00009"]
    assert y22.filter(pl.col("id") == "2212.00009")["datestamp"].item() == date(2023, 1, 5)  # the newest copy
    m = y22.filter(pl.col("id") == "2201.00001").row(0, named=True)
    assert (m["categories"], m["primary_category"]) == (["math.AG", "hep-th"], "math.AG")
    assert read_year(layout, 2006)["id"].to_list() == ["hep-th/0601001"]
    y24 = read_year(layout, 2024).sort("id")
    assert y24["authors"][0].to_list() == ["Ada Lovelace", "Alan Turing"] and y24["updated"].null_count() == 5

    texts = {r["id"]: f"{r['title']}\n{r['abstract']}" for y in layout.metadata_years() for r in
             read_year(layout, y).iter_rows(named=True)}  # fmt: skip
    for alias, vectors in expected.items():
        manifest = store.read_manifest(layout, alias)
        assert manifest is not None
        assert (manifest.dim, manifest.template, manifest.prefix, manifest.dtype) == (
            DIMS[alias], "{title}\n{abstract}", "", "float32",
        )  # fmt: skip
        assert manifest.backend == "sentence_transformer" and manifest.created_at == NOW
        assert store.pending_parts(layout, alias) == []
        rows = pl.concat(
            store.read_embeddings(layout, alias, y, dim=DIMS[alias]) for y in store.stored_years(layout, alias)
        )
        assert sorted(rows["id"].to_list()) == sorted(vectors)
        assert rows["valid"].all() and (rows["embedded_at"] == NOW).all()
        for rid, thash, vector in rows.select("id", "text_hash", "vector").iter_rows():
            assert thash == text_hash(texts[rid])
            np.testing.assert_array_equal(np.asarray(vector, dtype=np.float32), np.asarray(vectors[rid], np.float32))
    assert store.read_manifest(layout, "conan_v1").normalize is False  # type: ignore[union-attr]
    assert store.read_manifest(layout, "jasper_v1").name == "NovaSearch/jasper_en_vision_language_v1"  # type: ignore[union-attr]


def test_inputs_are_never_modified(config: Config, legacy: tuple[Path, dict]) -> None:
    before = checksums(legacy[0])
    migrate(config, legacy[0])
    migrate(config, legacy[0])
    assert checksums(legacy[0]) == before


def test_a_rerun_changes_nothing(config: Config, legacy: tuple[Path, dict]) -> None:
    migrate(config, legacy[0])
    layout = Layout(config.data_dir)
    stored_before = checksums(layout.metadata_dir) | checksums(layout.embeddings_root)
    again = migrate(config, legacy[0])
    assert again.new == 0
    assert again.metadata_total("unchanged") == 16 and again.metadata_total("new") == 0
    assert again.vector_total("unchanged") == 6 + 8 + 2 and again.vector_total("new") == 0
    assert {m.alias: m.manifest for m in again.models} == dict.fromkeys(DIMS, "kept")
    assert checksums(layout.metadata_dir) | checksums(layout.embeddings_root) == stored_before
    assert any(line.startswith("nothing new") for line in again.summary())
    jobs = [line for line in layout.jobs_log.read_text().splitlines() if '"migrate"' in line]
    assert len(jobs) == 2 and '"outcome": "ok"' in jobs[1] and '"new": 0' in jobs[1]


def _comparable(report: MigrationReport) -> dict[str, object]:
    out = report.to_dict()
    for key in ("dry_run", "seconds", "rows_per_s", "index"):  # a dry run updates no search index
        out.pop(key)
    return out


def test_dry_run_writes_nothing_and_reports_what_a_run_does(config: Config, legacy: tuple[Path, dict]) -> None:
    root = config.data_dir
    dry = migrate(config, legacy[0], dry_run=True)
    assert not root.exists()
    assert dry.dry_run and dry.summary()[0].endswith("(dry run: nothing written)")
    real = migrate(config, legacy[0])
    assert _comparable(dry) == _comparable(real)
    before = checksums(root)
    dry_again = migrate(config, legacy[0], dry_run=True)
    assert checksums(root) == before and dry_again.new == 0


def test_merge_keeps_newer_oai_rows_and_flags_changed_text(config: Config, legacy: tuple[Path, dict]) -> None:
    layout = Layout(config.data_dir)
    upsert(
        layout,
        frame(
            # same text as the legacy row up to whitespace (ingest stores it cleaned), newer: OAI's row stays,
            # and the migrated vector is current
            row(
                "2301.00001",
                title=clean_text("Deep  Learning"),
                abstract=clean_text("We study\n things.\n"),
                datestamp=date(2024, 5, 1),
                doi="10.1/x",
                created=date(2023, 1, 2),
            ),
            # newer with a revised abstract: OAI's row stays, the migrated vector is stale
            row("2301.00010", abstract="A revised abstract.", datestamp=date(2024, 5, 1)),
            # older than the legacy copy (2022-01-02): the legacy row replaces it
            row("2201.00001", datestamp=date(2021, 12, 1), source="snapshot"),
        ),
        deletions=pl.DataFrame({"id": ["2203.00003"], "datestamp": [date(2024, 1, 1)]}),
    )
    report = migrate(config, legacy[0])
    assert report.metadata[2023] == {"new": 5, "updated": 0, "unchanged": 0, "superseded": 2}
    assert report.metadata[2022] == {"new": 1, "updated": 1, "unchanged": 0, "superseded": 1}
    y23 = read_year(layout, 2023)
    kept = y23.filter(pl.col("id").is_in(["2301.00001", "2301.00010"])).sort("id")
    assert kept["source"].to_list() == ["oai", "oai"] and kept["doi"][0] == "10.1/x"
    assert kept["abstract"][1] == "A revised abstract."
    y22 = read_year(layout, 2022).sort("id")
    assert y22["id"].to_list() == ["2201.00001", "2212.00009"]  # 2203.00003 stays deleted
    assert y22["source"].to_list() == ["legacy", "legacy"]

    conan = by_file(report)["2022.parquet"]["vectors"]["conan_v1"]  # type: ignore[index]
    assert conan["no_metadata"] == 1 and conan["new"] == 3
    models = {m.alias: m for m in report.models}
    assert models["conan_v1"].years[2023].coverage.stale == 1 and models["conan_v1"].years[2023].coverage.valid == 3
    assert models["jasper_v1"].coverage.stale == 1
    rows = store.read_embeddings(layout, "conan_v1", 2022, dim=12)
    assert sorted(rows["id"].to_list()) == ["2201.00001", "2212.00009"]  # no vector for the deleted paper


def test_a_store_vector_as_current_as_the_legacy_one_is_kept(config: Config, legacy: tuple[Path, dict]) -> None:
    migrate(config, legacy[0])
    layout = Layout(config.data_dir)
    # a newer OAI text for 2301.00002; autopatch-like: a current vector for it, and one invalid vector
    upsert(layout, frame(row("2301.00002", abstract="New text.", datestamp=date(2025, 1, 1))))
    current = text_hash("Title of 2301.00002\nNew text.")
    fresh = pl.DataFrame(
        {"id": ["2301.00002", "2301.00001"], "text_hash": [current, "whatever"],
         "vector": [[0.5] * 8, [0.0] * 8], "embedded_at": [NOW, NOW]},
    )  # fmt: skip
    EmbeddingStore(layout, "jasper_v1", 8).write_part(2023, fresh)
    again = migrate(config, legacy[0])
    jasper = by_file(again)["2023.parquet"]["vectors"]["jasper_v1"]  # type: ignore[index]
    assert (jasper["kept"], jasper["replaced"], jasper["unchanged"]) == (1, 1, 1)
    rows = store.read_embeddings(layout, "jasper_v1", 2023, dim=8).sort("id")
    assert rows.filter(pl.col("id") == "2301.00002")["text_hash"].item() == current
    assert rows.filter(pl.col("id") == "2301.00001")["valid"].item()
    assert store.pending_parts(layout, "jasper_v1") == []


def test_configured_model_gives_the_manifest(tmp_path: Path, legacy: tuple[Path, dict]) -> None:
    jasper = ModelConfig(alias="jasper_v1", name="/models/jasper", backend="vllm", dim=8, max_length=512)
    config = Config(data_dir=tmp_path / "data", embedding={"models": (jasper,)})  # type: ignore[arg-type]
    report = migrate(config, legacy[0])
    model = next(m for m in report.models if m.alias == "jasper_v1")
    assert model.configured and model.config_block == () and model.name == "/models/jasper"
    assert any("configured name" in n for n in model.notes)
    manifest = store.read_manifest(Layout(config.data_dir), "jasper_v1")
    assert manifest is not None and (manifest.backend, manifest.max_length, manifest.name) == (
        "vllm", 512, "/models/jasper",
    )  # fmt: skip
