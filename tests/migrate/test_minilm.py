"""Continuing a legacy vector space with the real all-MiniLM-L6-v2: legacy vectors made the legacy way
(newlines to spaces, stripped, ``title\\nabstract``) are migrated, and autopatch embeds only the poisoned
papers, with the same model and template; the migrated vectors match what papersys would compute."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.embedding import PAPERS, CountingEngine, cosine
from support.legacy import NAN, gen1_row, migrate, write_gen1

from papersys import service
from papersys.config import Config
from papersys.embed.engines.base import Engine
from papersys.search.query import QueryOptions
from papersys.store import embeddings as store
from papersys.store.layout import Layout
from papersys.store.metadata import clean_text

pytestmark = pytest.mark.slow


def legacy_text(title: str, abstract: str) -> str:
    return title.replace("\n", " ").strip() + "\n" + abstract.replace("\n", " ").strip()


def test_autopatch_continues_a_migrated_minilm_space(tmp_path: Path, minilm: Engine) -> None:
    # raw arXiv-style text: hard line breaks, a double space
    papers = [(pid, title.replace(" ", "\n", 1), abstract.replace(" ", "  ", 1)) for pid, title, abstract in PAPERS]
    vectors = minilm.embed([legacy_text(t, a) for _, t, a in papers])
    poisoned = {papers[1][0]: None, papers[4][0]: [NAN] * 384}
    rows = [
        gen1_row(pid, title=t, abstract=a, minilm_legacy=poisoned.get(pid, [float(x) for x in vectors[i]]))
        for i, (pid, t, a) in enumerate(papers)
    ]
    write_gen1(tmp_path / "legacy" / "2024.parquet", rows, vectors={"minilm_legacy": ("list", 384)})
    config = Config(data_dir=tmp_path / "data")  # the default model: minilm, template "{title}\n{abstract}"
    report = migrate(config, tmp_path / "legacy", models=["minilm_legacy=minilm"])
    (model,) = report.models
    assert (model.configured, model.unit_norm, model.manifest, model.total("new")) == (True, True, "created", 4)
    assert report.inputs[0].whitespace_only == 6
    # the migration brought the model's search index up to date with what it wrote
    assert report.index is not None and report.index.to_dict()["models"][0]["indexed"] == model.total("new")
    assert service.similar(config, papers[0][0], QueryOptions(k=1)).hits  # searchable right away

    counting = CountingEngine(minilm)
    patched = service.embed_autopatch(config, engine_factory=lambda m, p: counting)
    assert patched.models[0].embedded == 2
    assert sorted(counting.texts) == sorted(
        f"{clean_text(t)}\n{clean_text(a)}" for pid, t, a in papers if pid in poisoned
    )
    layout = Layout(config.data_dir)
    stored = {
        r["id"]: np.asarray(r["vector"], dtype=np.float32)
        for y in store.stored_years(layout, "minilm")
        for r in store.read_embeddings(layout, "minilm", y, dim=384).iter_rows(named=True)
    }
    fresh = minilm.embed([f"{clean_text(t)}\n{clean_text(a)}" for _, t, a in papers])
    for i, (pid, _, _) in enumerate(papers):
        # the same space: a migrated vector is what papersys computes today for the same paper
        assert cosine(stored[pid], fresh[i]) > 0.999, pid
    assert all(m.total.gaps == 0 for m in service.embed_backlog(config).models)
