"""Web test fixtures: a store of real arXiv papers embedded by the real MiniLM, with a vector index, the
exported query encoder and a full-text index, served by the real uvicorn on a free 127.0.0.1 port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from support.builders import frame
from support.search_support import paper_rows
from support.web_support import STORED, Api, serve, store_config

from papersys import service
from papersys.store.layout import Layout
from papersys.store.metadata import upsert

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "search"


@pytest.fixture(scope="session")
def web_papers() -> pl.DataFrame:
    return pl.read_parquet(FIXTURES / "papers_400.parquet").head(STORED + 40)


@pytest.fixture(scope="session")
def web_store(tmp_path_factory: pytest.TempPathFactory, web_papers: pl.DataFrame, factory: object) -> Path:
    """A root holding data/ with STORED real papers, embedded and indexed (vectors and full text). Tests that
    change the store copy it (``copy_store``)."""
    root = tmp_path_factory.mktemp("web")
    config = store_config(root)
    upsert(Layout(config.data_dir), frame(*paper_rows(web_papers.head(STORED))))
    service.embed_autopatch(config, engine_factory=factory)  # type: ignore[arg-type]
    service.index(config, text_only=True)
    return root


@pytest.fixture(scope="module")
def api(web_store: Path) -> Iterator[Api]:
    """The API over the shared store (read-only tests)."""
    yield from serve(store_config(web_store))
