"""Spawned workers: the real MiniLM in a child, the vLLM adapter against a stand-in vllm, crash and hang."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from support import standin_vllm
from support.embedding import assert_golden, golden_texts

from papersys.config import ModelConfig
from papersys.embed.engines import Engine, open_engine
from papersys.embed.engines.vllm import llm_kwargs
from papersys.embed.engines.worker import WorkerEngine
from papersys.errors import EngineError


@pytest.fixture
def fake_vllm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in ``vllm`` package on sys.path (and so on the spawned child's); returns the kwargs record."""
    package = tmp_path / "site" / "vllm"
    package.mkdir(parents=True)
    shutil.copy(standin_vllm.__file__, package / "__init__.py")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    record = tmp_path / "llm-kwargs.json"
    monkeypatch.setenv("STANDIN_VLLM_RECORD", str(record))
    return record


def vllm_model(**kw: object) -> ModelConfig:
    base: dict[str, object] = {"alias": "fake", "backend": "vllm", "dim": standin_vllm.DIM, "max_length": 16}
    return ModelConfig.model_validate(base | kw)


def expected(text: str, max_length: int) -> np.ndarray:
    ids = standin_vllm.Tokenizer()([text], truncation=True, max_length=max_length)["input_ids"][0]
    vec = np.asarray(standin_vllm.vector_for(ids), dtype=np.float32)
    return vec / np.linalg.norm(vec)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_vllm_adapter_runs_end_to_end_in_a_spawned_worker(fake_vllm: Path, tmp_path: Path) -> None:
    model = vllm_model(model_dtype="bfloat16", gpu_memory_utilization=0.5)
    engine = open_engine(model, log_path=tmp_path / "worker.log")
    try:
        assert isinstance(engine, WorkerEngine) and engine.dim == standin_vllm.DIM
        long_text = "a long abstract " * 10
        vectors = engine.embed(["short", long_text])
        assert vectors.dtype == np.float32 and vectors.shape == (2, standin_vllm.DIM)
        np.testing.assert_allclose(vectors[0], expected("short", 16), atol=1e-6)
        # cut to max_length tokens keeping the start (the stand-in refuses longer prompts, like vLLM)
        np.testing.assert_allclose(vectors[1], expected(long_text[:14], 16), atol=1e-6)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
        kwargs = json.loads(fake_vllm.read_text())
        assert kwargs["pid"] == engine.pid != os.getpid()  # vllm was imported in the child only
        assert {k: kwargs[k] for k in ("runner", "dtype", "max_model_len", "gpu_memory_utilization")} == {
            "runner": "pooling",
            "dtype": "bfloat16",
            "max_model_len": 16,
            "gpu_memory_utilization": 0.5,
        }
        assert Path(kwargs["model"]).is_dir()  # the default name resolved to the bundled copy
    finally:
        engine.close()
    assert engine.pid is not None and not pid_alive(engine.pid)


def test_vllm_kwargs_follow_the_api_generation() -> None:
    model = vllm_model()
    assert llm_kwargs(model, "0.11.2")["runner"] == "pooling" and "task" not in llm_kwargs(model, "0.11.2")
    old = llm_kwargs(model, "0.9.2")
    assert old["task"] == "embed" and "runner" not in old
    assert old["max_model_len"] == 16 and old["dtype"] == "auto"


def test_a_worker_that_cannot_load_its_model_is_an_engine_error(
    fake_vllm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_VLLM_FAIL", "1")
    with pytest.raises(EngineError, match="could not start: .*CUDA out of memory"):
        WorkerEngine(vllm_model(), log_path=tmp_path / "w.log")


def test_a_crashing_worker_is_an_engine_error_and_the_parent_goes_on(fake_vllm: Path, tmp_path: Path) -> None:
    engine = WorkerEngine(vllm_model(), log_path=tmp_path / "w.log")
    with pytest.raises(EngineError) as info:
        engine.embed(["fine", "please CRASH now"])
    message = str(info.value)
    assert "exited with status 7" in message and "stand-in vllm: simulated crash" in message
    with pytest.raises(EngineError, match="not running"):
        engine.embed(["again"])
    engine.close()
    fresh = WorkerEngine(vllm_model(), log_path=tmp_path / "w2.log")  # the parent is healthy: start another
    try:
        assert fresh.embed(["fine"]).shape == (1, standin_vllm.DIM)
    finally:
        fresh.close()


def test_a_hung_worker_is_killed_after_the_timeout(fake_vllm: Path, tmp_path: Path) -> None:
    engine = WorkerEngine(vllm_model(worker_timeout_s=1.5), log_path=tmp_path / "w.log")
    pid = engine.pid
    assert pid is not None
    with pytest.raises(EngineError, match=r"sent no reply within 1.5s for a batch of 1; killed it.*simulated hang"):
        engine.embed(["HANG here"])
    assert not pid_alive(pid)
    engine.close()


@pytest.mark.slow
def test_sentence_transformer_in_a_spawned_worker_matches_inline(minilm: Engine, tmp_path: Path) -> None:
    engine = open_engine(ModelConfig(isolation="spawn"), log_path=tmp_path / "st.log")
    try:
        assert isinstance(engine, WorkerEngine) and engine.dim == 384
        spawned = engine.embed(golden_texts())
    finally:
        engine.close()
    assert_golden(spawned)
    np.testing.assert_allclose(spawned, minilm.embed(golden_texts()), atol=1e-5)
