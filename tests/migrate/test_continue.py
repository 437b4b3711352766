"""After a migration: backlog shows exactly the poisoned rows, autopatch continues the migrated models (and
refuses a config that contradicts their manifests); a cancelled migration converges when run again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from support.embedding import HashEngine
from support.legacy import DIMS, GAPS, NOW, build_fixture, migrate

from papersys import service
from papersys.config import Config, ModelConfig
from papersys.embed.coverage import model_store, plan_year
from papersys.embed.manifest import check_manifest, configured_manifest
from papersys.errors import Interrupted, ManifestMismatchError, UsageError
from papersys.runtime import ProgressTask, Runtime
from papersys.store import embeddings as store
from papersys.store.layout import Layout
from papersys.store.metadata import read_year

MODELS = (
    ModelConfig(alias="jasper_v1", name="NovaSearch/jasper_en_vision_language_v1", dim=8, normalize=True),
    ModelConfig(alias="conan_v1", name="TencentBAC/Conan-embedding-v1", dim=12, normalize=False),
    ModelConfig(alias="gemini_embedding_001", name="gemini-embedding-001", dim=6, normalize=True),
)


def configured(tmp_path: Path, *models: ModelConfig) -> Config:
    return Config(data_dir=tmp_path / "data", embedding={"models": models or MODELS})  # type: ignore[arg-type]


@pytest.fixture
def legacy_dir(tmp_path: Path) -> Path:
    build_fixture(tmp_path / "legacy")
    return tmp_path / "legacy"


def gap_ids(config: Config, model: ModelConfig) -> dict[str, str]:
    layout = Layout(config.data_dir)
    emb = model_store(layout, model, check_manifest(layout, model))
    gaps: dict[str, str] = {}
    for year in layout.metadata_years():
        plan = plan_year(emb, model, year)
        gaps |= {i: str(s) for i, s in plan.gaps.select("id", "status").iter_rows()}
    return gaps


def test_backlog_shows_exactly_the_poisoned_rows(tmp_path: Path, legacy_dir: Path) -> None:
    config = configured(tmp_path)
    report = migrate(Config(data_dir=config.data_dir), legacy_dir)  # migrated before the models were configured
    backlog = service.embed_backlog(config)
    totals = {m.alias: m.total for m in backlog.models}
    for model in MODELS:
        assert gap_ids(config, model) == dict.fromkeys(GAPS[model.alias], "missing")
        assert totals[model.alias].gaps == len(GAPS[model.alias]) and totals[model.alias].stale == 0
    # the migration's own report said the same, per year
    reported = {m.alias: {y: c.coverage for y, c in m.years.items()} for m in report.models}
    assert reported == {m.alias: dict(m.years) for m in backlog.models}


def test_autopatch_fills_exactly_the_gaps_in_the_same_space(tmp_path: Path, legacy_dir: Path) -> None:
    config = configured(tmp_path)
    migrate(config, legacy_dir)
    engines: dict[str, HashEngine] = {}

    def factory(model: ModelConfig, log_path: Path) -> HashEngine:
        return engines.setdefault(model.alias, HashEngine(model.dim))

    patched = service.embed_autopatch(config, engine_factory=factory)
    assert {m.alias: (m.manifest, m.embedded) for m in patched.models} == {
        a: ("kept", len(ids)) for a, ids in GAPS.items()
    }
    layout = Layout(config.data_dir)
    titles = {r["id"]: f"{r['title']}\n{r['abstract']}" for y in layout.metadata_years()
              for r in read_year(layout, y).iter_rows(named=True)}  # fmt: skip
    for alias, ids in GAPS.items():
        assert sorted(engines[alias].texts) == sorted(titles[i] for i in ids)
    assert all(m.total.gaps == 0 for m in service.embed_backlog(config).models)
    # the migrated vectors themselves are untouched
    rows = store.read_embeddings(layout, "conan_v1", 2023, dim=12)
    assert (rows.filter(pl.col("id") == "2301.00001")["embedded_at"] == NOW).all()


def test_a_config_contradicting_the_migrated_manifest_is_refused(tmp_path: Path, legacy_dir: Path) -> None:
    migrate(Config(data_dir=tmp_path / "data"), legacy_dir)
    other = configured(tmp_path, ModelConfig(alias="jasper_v1", name=MODELS[0].name, dim=8, template="{title}"))
    with pytest.raises(ManifestMismatchError, match="template"):
        service.embed_autopatch(other, engine_factory=lambda m, p: HashEngine(m.dim))
    with pytest.raises(ManifestMismatchError, match="template"):
        service.embed_backlog(other)
    # and a migration into a store whose manifest names another model for the alias
    with pytest.raises(ManifestMismatchError, match="name"):
        migrate(Config(data_dir=tmp_path / "data"), legacy_dir, models=["jasper_v1=jasper_v1:someone/else"])


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (ModelConfig(alias="jasper_v1", dim=8, template="{title}"), "template"),
        (ModelConfig(alias="jasper_v1", dim=8, prefix="query: "), "prefix"),
        (ModelConfig(alias="conan_v1", dim=1792), "dim 1792 but the legacy 'conan_v1' vectors have 12"),
    ],
)
def test_a_configured_model_unlike_the_legacy_vectors_stops_before_writing(
    tmp_path: Path, legacy_dir: Path, model: ModelConfig, message: str
) -> None:
    config = configured(tmp_path, model)
    with pytest.raises(UsageError, match=message):
        migrate(config, legacy_dir)
    assert not (config.data_dir / "metadata").exists() and not (config.data_dir / "embeddings").exists()


def test_model_specs_are_checked(tmp_path: Path, legacy_dir: Path) -> None:
    config = Config(data_dir=tmp_path / "data")
    for spec, message in [
        ("jasper_v1", "expected LEGACY_COL=ALIAS"),
        ("jasper_v1=bad alias", "must be letters"),
        ("jasper_v1=jasper", "give the model name too"),
    ]:
        with pytest.raises(UsageError, match=message):
            migrate(config, legacy_dir, models=[spec])
    with pytest.raises(UsageError, match="mapped twice"):
        migrate(config, legacy_dir, models=["jasper_v1=a:x", "conan_v1=a:y"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no legacy files"):
        migrate(config, tmp_path / "empty")
    with pytest.raises(UsageError, match="not a directory"):
        migrate(config, tmp_path / "nowhere")


class _CancelAfter:
    """Progress that cancels the run when the named task first advances (a SIGTERM at that moment)."""

    def __init__(self, runtime_cancel: object, description: str) -> None:
        self.cancel, self.description = runtime_cancel, description

    def task(self, description: str, *, total: float | None = None, unit: str = "") -> ProgressTask:
        outer = self

        class _Task:
            def advance(self, amount: float = 1) -> None:
                if description == outer.description and amount:
                    outer.cancel.set()  # type: ignore[attr-defined]

            def update(self, *, total: float | None = None, description: str | None = None) -> None:
                return None

            def close(self) -> None:
                return None

        return _Task()


def _store_content(config: Config) -> Iterator[tuple[str, int, list[tuple[object, ...]]]]:
    layout = Layout(config.data_dir)
    for year in layout.metadata_years():
        yield "metadata", year, sorted(read_year(layout, year).rows())
    for alias, dim in DIMS.items():
        for year in store.stored_years(layout, alias):
            rows = store.read_embeddings(layout, alias, year, dim=dim)
            yield alias, year, sorted((r[0], r[1], np.asarray(r[4]).tobytes()) for r in rows.rows())


def test_a_cancelled_migration_converges_when_run_again(tmp_path: Path, legacy_dir: Path) -> None:
    clean = Config(data_dir=tmp_path / "clean")
    migrate(clean, legacy_dir)
    config = Config(data_dir=tmp_path / "data")
    runtime = Runtime(clock=lambda: NOW)
    runtime = Runtime(
        clock=lambda: NOW, cancel=runtime.cancel, progress=_CancelAfter(runtime.cancel, "migrate conan_v1")
    )
    with pytest.raises(Interrupted):
        service.migrate_legacy(config, legacy_dir, runtime=runtime)
    layout = Layout(config.data_dir)
    assert store.pending_parts(layout, "conan_v1")  # the first input's conan vectors, not yet compacted
    assert not store.stored_years(layout, "gemini_embedding_001")
    assert '"outcome": "interrupted"' in layout.jobs_log.read_text()
    again = migrate(config, legacy_dir)
    assert next(m for m in again.models if m.alias == "conan_v1").total("unchanged") == 4
    assert store.pending_parts(layout, "conan_v1") == []
    assert list(_store_content(config)) == list(_store_content(clean))


def test_a_manifest_with_nothing_behind_it_is_replaced(tmp_path: Path, legacy_dir: Path) -> None:
    layout = Layout(tmp_path / "data")
    stale = configured_manifest(ModelConfig(alias="jasper_v1", name="old/model", dim=3, template="{title}"))
    store.write_manifest(layout, "jasper_v1", stale)
    store.write_manifest(layout, "conan_v1", configured_manifest(ModelConfig(alias="conan_v1", dim=5)))
    conan = ModelConfig(alias="conan_v1", name="TencentBAC/Conan-embedding-v1", dim=12, normalize=False)
    report = migrate(configured(tmp_path, conan), legacy_dir)
    assert {m.alias: m.manifest for m in report.models}["jasper_v1"] == "created"
    assert store.read_manifest(layout, "jasper_v1").dim == 8  # type: ignore[union-attr]
    assert store.read_manifest(layout, "conan_v1") == configured_manifest(conan, NOW)
