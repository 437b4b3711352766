"""Search test fixtures: 1,000 real arXiv papers, and one ONNX export of MiniLM shared by the session."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest
from support.builders import frame
from support.search_support import make_config, paper_rows

from papersys import service
from papersys.config import ModelConfig
from papersys.search.encoder import export_query_encoder
from papersys.search.encoder_dir import EncoderInfo
from papersys.store.layout import Layout
from papersys.store.metadata import upsert

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "search"
PAPERS = 200


@pytest.fixture(scope="session")
def real_papers() -> list[dict[str, str]]:
    """1,000 real papers (id, title, abstract), whitespace collapsed as the store keeps them."""
    with gzip.open(FIXTURES / "real_papers_1000.jsonl.gz", "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory, real_papers: list[dict[str, str]]) -> tuple[Path, EncoderInfo]:
    """MiniLM exported once (checked on 32 real titles); tests must not modify this directory."""
    directory = tmp_path_factory.mktemp("index") / "minilm" / "encoder"
    info = export_query_encoder(ModelConfig(), directory, check_texts=[p["title"] for p in real_papers[:32]])
    return directory, info


@pytest.fixture(scope="session")
def papers() -> pl.DataFrame:
    return pl.read_parquet(FIXTURES / "papers_400.parquet").head(PAPERS)


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory, papers: pl.DataFrame, factory: object) -> Path:
    """A store of 200 real papers, embedded (which builds the index and exports the query encoder).
    Tests copy it before changing anything."""
    root = tmp_path_factory.mktemp("built")
    config = make_config(root, ann_min_rows=0, tail_rows=0)  # an ANN index even for 200 papers
    upsert(Layout(config.data_dir), frame(*paper_rows(papers)))
    report = service.embed_autopatch(config, engine_factory=factory)  # type: ignore[arg-type]
    assert report.index is not None and "exported" in report.index.summary()[0]
    return root
