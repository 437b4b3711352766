"""Search test fixtures: 1,000 real arXiv papers, and one ONNX export of MiniLM shared by the session."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from papersys.config import ModelConfig
from papersys.search.encoder import export_query_encoder
from papersys.search.encoder_dir import EncoderInfo

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "search"


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
