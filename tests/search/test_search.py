"""Search over real arXiv papers embedded by the real MiniLM: titles find their papers, similar finds
near-duplicates, filters hold, the index follows the store (adds, re-embeds, deletions), the Library."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from support.builders import frame, row
from support.expected import first_version_bound
from support.search_support import HIT_KEYS, RESULT_KEYS, make_config

from papersys import Library, service
from papersys.config import Config
from papersys.embed.engines.base import Engine
from papersys.errors import SearchError, UsageError
from papersys.search.manifest import read_index_manifest
from papersys.search.query import QueryOptions
from papersys.search.vectors import VectorIndex
from papersys.store.layout import Layout
from papersys.store.metadata import upsert


@pytest.fixture
def store(built: Path, tmp_path: Path) -> Iterator[Config]:
    shutil.copytree(built / "data", tmp_path / "data", symlinks=True)
    yield make_config(tmp_path, ann_min_rows=0, tail_rows=0)


def test_a_papers_exact_title_finds_it_in_the_top_3(built: Path, papers: pl.DataFrame) -> None:
    library = Library.open(make_config(built, ann_min_rows=0, tail_rows=0))
    found = 0
    for paper in papers.iter_rows(named=True):
        result = library.search(paper["title"], k=3)
        found += paper["id"] in [hit.paper.id for hit in result.hits]
    assert found / len(papers) >= 0.95, f"{found}/{len(papers)}"


def test_scores_are_exact_cosine_and_sorted(store: Config, minilm: Engine, papers: pl.DataFrame) -> None:
    paper = papers.row(7, named=True)
    result = service.search(store, paper["title"], QueryOptions(k=10))
    index = VectorIndex.open(Layout(store.data_dir), store.model("minilm"))
    query = minilm.embed([paper["title"]])[0]
    for hit in result.hits:
        stored = np.asarray(index.vectors[index.row_of(hit.paper.id)], dtype=np.float64)
        exact = float(stored @ query / np.linalg.norm(stored) / np.linalg.norm(query))
        assert hit.score == pytest.approx(exact, abs=2e-3)  # the query side is ONNX: 1e-4-level differences
    scores = [hit.score for hit in result.hits]
    assert scores == sorted(scores, reverse=True) and len(scores) == 10


def test_similar_ranks_a_near_duplicate_first(store: Config, papers: pl.DataFrame, factory: object) -> None:
    original = papers.row(11, named=True)
    twin = row(
        "2501.99999",
        title=original["title"] + " (extended version)",
        abstract=original["abstract"].replace(". ", ", and ", 1),
        categories=["cs.LG"],
    )
    upsert(Layout(store.data_dir), frame(twin))
    service.embed_autopatch(store, engine_factory=factory)  # type: ignore[arg-type]
    result = service.similar(store, original["id"] + "v3", QueryOptions(k=5))
    assert result.hits[0].paper.id == "2501.99999"
    assert original["id"] not in [h.paper.id for h in result.hits]  # itself excluded
    assert len(result.hits) == 5 and result.query == original["id"]


def test_filters_return_only_matching_papers_and_still_k(built: Path, papers: pl.DataFrame) -> None:
    library = Library.open(make_config(built, ann_min_rows=0, tail_rows=0))
    cl = [p for p in papers.iter_rows(named=True) if "cs.CL" in p["categories"]]
    assert len(cl) >= 10
    result = library.search("image segmentation with convolutional networks", k=10, categories=["cs.CL"])
    assert len(result.hits) == 10 and all("cs.CL" in h.paper.categories for h in result.hits)
    since, until = date(2024, 6, 1), date(2024, 12, 31)
    # the store holds first-version dates: a created after the id's month (124 of these 400 real papers)
    # is bounded by it (data-formats.md, "created")
    dated = [p for p in papers.iter_rows(named=True) if since <= first_version_bound(p["id"], p["created"]) <= until]
    result = library.similar(papers["id"][0], k=1000, since=since, until=until)
    assert {h.paper.id for h in result.hits} == {p["id"] for p in dated} - {papers["id"][0]}
    # a filter matching fewer papers than k returns exactly those; an archive matches its categories
    rare = [p for p in papers.iter_rows(named=True) if any(c.startswith("q-bio.") for c in p["categories"])]
    result = library.search("proteins", k=50, categories=["q-bio"])
    assert sorted(h.paper.id for h in result.hits) == sorted(p["id"] for p in rare)
    assert result.to_dict()["filters"] == {"categories": ["q-bio"], "since": None, "until": None}


def test_a_reembedded_stale_paper_is_replaced(store: Config, papers: pl.DataFrame, factory: object) -> None:
    layout = Layout(store.data_dir)
    target = papers.row(20, named=True)
    new_title = "Quantum error correction thresholds for surface codes under biased noise"
    new_abstract = "We compute thresholds of surface codes under strongly biased Pauli noise with tensor networks."
    changed = row(
        target["id"],
        title=new_title,
        abstract=new_abstract,
        categories=["quant-ph"],
        created=target["created"],
        datestamp=date(2025, 6, 1),
    )
    upsert(layout, frame(changed))
    before = read_index_manifest(layout, "minilm")
    report = service.embed_autopatch(store, engine_factory=factory)  # type: ignore[arg-type]
    assert report.embedded == 1
    after = read_index_manifest(layout, "minilm")
    assert before is not None and after is not None
    assert after.live == before.live and after.dead == before.dead + 1
    hits = service.search(store, new_title, QueryOptions(k=1)).hits
    assert hits[0].paper.id == target["id"] and hits[0].paper.title == new_title
    assert (
        service.search(store, "surface code thresholds", QueryOptions(k=3, categories=["quant-ph"])).hits[0].paper.id
        == target["id"]
    )


def test_a_deleted_paper_disappears(store: Config, papers: pl.DataFrame, factory: object) -> None:
    layout = Layout(store.data_dir)
    gone = papers.row(30, named=True)
    year_file = layout.metadata_file(int("20" + gone["id"][:2]))
    row_before = VectorIndex.open(layout, store.model("minilm")).row_of(gone["id"])
    assert row_before is not None
    kept = pl.read_parquet(year_file).filter(pl.col("id") != gone["id"])
    kept.write_parquet(year_file)
    assert gone["id"] not in [
        h.paper.id for h in service.search(store, gone["title"], QueryOptions(k=5)).hits
    ]  # before update
    service.embed_autopatch(store, engine_factory=factory)  # type: ignore[arg-type]
    index = VectorIndex.open(layout, store.model("minilm"))
    assert index.row_of(gone["id"]) is None
    # its row is still inside the IVF index, dead: the scan itself skips it (a bitmap of live rows), so
    # its own vector finds 5 other papers, not itself
    assert row_before < index.manifest.ann_rows and index.manifest.dead == 1
    found = index.search(index.read_vectors(np.asarray([row_before]))[0], 5).rows
    assert len(found) == 5 and row_before not in found.tolist()
    with pytest.raises(SearchError, match="not in the store"):
        service.similar(store, gone["id"])
    assert gone["id"] not in [h.paper.id for h in service.search(store, gone["title"], QueryOptions(k=5)).hits]


def test_library_round_trip(built: Path, papers: pl.DataFrame) -> None:
    library = Library.open(built / "data")
    paper = library.paper(papers["id"][5] + "v1")
    assert paper.title == papers["title"][5] and paper.url == f"https://arxiv.org/abs/{paper.id}"
    assert dataclasses.is_dataclass(paper)
    with pytest.raises(dataclasses.FrozenInstanceError):
        paper.title = "x"  # type: ignore[misc]
    result = library.search(paper.title, k=3)
    assert result.hits[0].paper == paper and result.model == "minilm" and result.mode == "semantic"
    data = result.to_dict()
    assert set(data) == RESULT_KEYS and set(data["results"][0]) == HIT_KEYS
    assert [h.paper.id for h in library.similar(paper.id, k=4).hits][:4] == [
        h["id"] for h in service.similar(library.config, paper.id, QueryOptions(k=4)).to_dict()["results"]
    ]


def test_queries_check_their_input(built: Path) -> None:
    config = make_config(built)
    bad = [
        ({"text": "  "}, UsageError, "empty"),
        ({"text": "x", "k": 0}, UsageError, "between 1 and 1000"),
        ({"text": "x", "k": 1001}, UsageError, "between 1 and 1000"),
        ({"text": "x", "model": "nope"}, UsageError, "unknown model alias"),
        ({"text": "x", "categories": ["CS LG"]}, UsageError, "not an arXiv category"),
        ({"text": "x", "since": "2024-05-01", "until": "2024-01-01"}, UsageError, "after --until"),
        ({"text": "x", "since": "2024-13-01"}, UsageError, "not a date"),
    ]
    for kwargs, error, message in bad:
        text = str(kwargs.pop("text"))
        with pytest.raises(error, match=message):
            service.search(config, text, QueryOptions(**kwargs))  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="not an arXiv id"):
        service.similar(config, "not-an-id")
    with pytest.raises(SearchError, match="not in the store"):
        service.similar(config, "2412.00001")
