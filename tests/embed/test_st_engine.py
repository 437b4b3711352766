"""The sentence-transformers engine on the real all-MiniLM-L6-v2: golden values, similarity, norms, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.embedding import PAPERS, SIMILAR, UNRELATED, assert_golden, cosine, golden_texts

from papersys.config import DEFAULT_MODEL_NAME, ModelConfig
from papersys.embed.engines.base import Engine, check_vectors, resolve_model_path
from papersys.errors import EngineError


def test_golden_vectors_dim_and_unit_norm(minilm: Engine) -> None:
    vectors = minilm.embed(golden_texts())
    assert minilm.dim == 384
    assert vectors.dtype == np.float32 and vectors.shape == (3, 384)
    assert_golden(vectors)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_same_text_same_vector_whatever_the_batch(minilm: Engine) -> None:
    text = golden_texts()[2]
    alone = minilm.embed([text])[0]
    long_neighbour = PAPERS[0][2] * 5  # forces padding of the short text inside the batch
    in_batch = minilm.embed([long_neighbour, text, "x"])[1]
    np.testing.assert_allclose(alone, in_batch, atol=1e-5)


def test_similar_abstracts_are_closer_than_unrelated_ones(minilm: Engine) -> None:
    by_id = {pid: f"{title}\n{abstract}" for pid, title, abstract in PAPERS}
    a, b, c = minilm.embed([by_id[SIMILAR[0]], by_id[SIMILAR[1]], by_id[UNRELATED]])
    assert cosine(a, b) > 0.6
    assert cosine(a, b) > cosine(a, c) + 0.4


def test_empty_input_gives_an_empty_matrix(minilm: Engine) -> None:
    assert minilm.embed([]).shape == (0, 384)


def test_default_name_resolves_to_the_bundled_copy() -> None:
    path = Path(resolve_model_path(DEFAULT_MODEL_NAME))
    assert (path / "config.json").is_file() and (path / "modules.json").is_file()
    assert resolve_model_path("/srv/models/other") == "/srv/models/other"
    assert resolve_model_path("BAAI/bge-small-en-v1.5") == "BAAI/bge-small-en-v1.5"


def test_wrong_dim_and_missing_model_are_engine_errors(minilm: Engine, tmp_path: Path) -> None:
    from papersys.embed.engines.st import SentenceTransformerEngine

    with pytest.raises(EngineError, match="produces 384-dim vectors but dim = 512"):
        SentenceTransformerEngine(ModelConfig(dim=512))
    with pytest.raises(EngineError, match="cannot load"):
        SentenceTransformerEngine(ModelConfig(name=str(tmp_path / "no-such-model")))


def test_check_vectors_rejects_bad_shapes_and_values() -> None:
    good = np.ones((2, 3), dtype=np.float64)
    assert check_vectors("m", good, 2, 3).dtype == np.float32
    with pytest.raises(EngineError, match=r"shape \(2, 3\), expected \(2, 4\)"):
        check_vectors("m", good, 2, 4)
    bad = np.ones((2, 3), dtype=np.float32)
    bad[1, 0] = np.nan
    with pytest.raises(EngineError, match="row 1 is non-finite"):
        check_vectors("m", bad, 2, 3)
    with pytest.raises(EngineError, match="row 0 is all-zero"):
        check_vectors("m", np.zeros((1, 3)), 1, 3)
