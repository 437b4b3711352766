"""Recall of the approximate index against exact numpy search, on 50,000 clustered unit vectors stored like
real embeddings (topics → subtopics → papers) and searched through the same path as `papersys search`."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from support.search_support import make_config

from papersys.embed.text import hash_texts, render_texts
from papersys.runtime import Runtime
from papersys.search.build import update_index
from papersys.search.filters import Filters
from papersys.search.manifest import IndexManifest, read_index_manifest
from papersys.search.vectors import EXACT_LIMIT, VectorIndex
from papersys.store.atomic import write_parquet
from papersys.store.embeddings import embedding_schema, write_manifest
from papersys.store.layout import Layout
from papersys.store.metadata import conform

DIM, PAPERS, QUERIES = 384, 50_000, 300


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _clustered(rng: np.random.Generator, n: int) -> np.ndarray:
    topics, subtopics = _unit(rng, 200), _unit(rng, 5_000)
    sub = rng.integers(0, len(subtopics), n)
    x = topics[sub // 25] + 0.8 * subtopics[sub] + rng.uniform(0.35, 0.9, (n, 1)).astype(np.float32) * _unit(rng, n)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _store(root: Path, vectors: np.ndarray) -> Layout:
    from papersys.config import ModelConfig
    from papersys.embed.manifest import configured_manifest

    layout, model = Layout(root), ModelConfig()
    write_manifest(layout, model.alias, configured_manifest(model, datetime(2026, 1, 1, tzinfo=UTC)))
    ids = [f"2401.{i:05d}" for i in range(len(vectors))]
    meta = conform(
        pl.DataFrame(
            {
                "id": ids,
                "title": [f"Paper {i}" for i in ids],
                "abstract": ["An abstract."] * len(ids),
                "authors": [["Ada Lovelace"]] * len(ids),
                "categories": [["cs.LG"]] * len(ids),
                "primary_category": ["cs.LG"] * len(ids),
                "created": [date(2024, 1, 1) + timedelta(days=i % 28) for i in range(len(ids))],
                "datestamp": [date(2024, 2, 1)] * len(ids),
                "source": ["snapshot"] * len(ids),
            }
        )
    )
    write_parquet(meta, layout.metadata_file(2024))
    emb = pl.DataFrame(
        {
            "id": ids,
            "text_hash": hash_texts(render_texts(meta, model.template, model.prefix)),
            "vector": pl.Series(vectors),
            "embedded_at": [datetime(2026, 2, 1, tzinfo=UTC)] * len(ids),
        },
        schema=embedding_schema(model.dim, model.dtype),
    )
    write_parquet(emb, layout.embedding_file(model.alias, 2024))
    return layout


@pytest.mark.slow
def test_recall_at_10_against_exact_search_on_50k_clustered_vectors(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    drawn = _clustered(rng, PAPERS + QUERIES)
    vectors, held_out = drawn[:PAPERS], drawn[PAPERS:]
    config = make_config(tmp_path, ann_min_rows=0, tail_rows=0)  # every row in the ANN index: no exact tail
    layout = _store(config.data_dir, vectors)
    model = config.embedding.models[0]
    report = update_index(layout, model, settings=config.search, runtime=Runtime())
    assert report.action == "built" and report.live == PAPERS

    index = VectorIndex.open(layout, model)
    assert index.manifest.ann_rows == PAPERS  # the approximate path answers, not an exact scan
    # queries: papers drawn from the same topics but not stored (like a query text, which lands among the
    # papers on its subject), and stored papers' vectors moved a little (a paraphrase of a known paper)
    near = vectors[rng.integers(0, PAPERS, QUERIES)] + 0.15 * _unit(rng, QUERIES)
    queries = np.concatenate([held_out, near / np.linalg.norm(near, axis=1, keepdims=True)])
    exact = np.argsort(-(vectors @ queries.T), axis=0)[:10].T  # positions in `vectors`: paper 2401.<position>
    recall = _recall(index, queries, exact)
    assert recall >= 0.98, recall
    # the lists scanned per query are a query-time setting: one list finds less, without a rebuild
    assert index.probes == config.search.probes
    one = VectorIndex.open(layout, model, probes=1)
    assert one.probes == 1 and _recall(one, queries, exact) < recall

    # a filter matching too many rows for an exact scan (3 of 28 days: 5,357 rows) is applied inside the
    # IVF scan; its results are the filtered exact top 10 just as often, and always 10
    allowed = Filters.of(since="2024-01-01", until="2024-01-03").rows(index)
    assert allowed is not None and EXACT_LIMIT < len(allowed) < PAPERS // 5
    inside = np.flatnonzero(np.arange(PAPERS) % 28 < 3)  # positions of the papers created on those days
    truth = inside[np.argsort(-(vectors[inside] @ queries.T), axis=0)[:10].T]
    hits = 0
    for query, best in zip(queries, truth, strict=True):
        ids = index.ids(index.search(query, 10, allowed).rows)
        assert len(ids) == 10 and all(int(i[5:]) % 28 < 3 for i in ids)
        hits += len(set(ids) & {f"2401.{i:05d}" for i in best.tolist()})
    assert hits / (10 * len(queries)) >= 0.98, hits / (10 * len(queries))


def _recall(index: VectorIndex, queries: np.ndarray, exact: np.ndarray) -> float:
    found = 0
    for query, truth in zip(queries, exact, strict=True):
        ids = index.ids(index.search(query, 10).rows)
        assert len(ids) == 10
        found += len(set(ids) & {f"2401.{i:05d}" for i in truth.tolist()})
    return found / (10 * len(queries))


def test_merges_add_to_the_lists_and_train_again_once_the_rows_outgrow_them(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    vectors = _clustered(rng, 22_000)
    config = make_config(tmp_path, ann_min_rows=0, tail_rows=0)
    model = config.embedding.models[0]

    def update(count: int) -> IndexManifest:
        layout = _store(config.data_dir, vectors[:count])  # the same papers and more
        update_index(layout, model, settings=config.search, runtime=Runtime())
        manifest = read_index_manifest(layout, model.alias)
        assert manifest is not None and manifest.ann_rows == manifest.rows == count
        index = VectorIndex.open(layout, model)
        for position in rng.integers(0, count, 5).tolist():  # a stored vector finds its own paper first
            assert index.ids(index.search(vectors[position], 1).rows) == [f"2401.{position:05d}"]
        return manifest

    small = update(2_000)
    assert small.ann_lists == 2_000 // 40  # 2·√2,000 ≈ 89 → 64, capped at 40 vectors a list
    grown = update(20_000)  # wants 256 lists, over twice 50: trained again
    assert grown.ann_lists == 256 and grown.ann_seq == small.ann_seq + 1
    more = update(22_000)  # still wants 256: the new rows join the existing lists
    assert more.ann_lists == 256 and more.ann_seq == grown.ann_seq + 1
