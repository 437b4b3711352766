"""The OpenAI-compatible HTTP engine against a real server: infinity-emb serving the bundled MiniLM on
127.0.0.1 (tests/support/infinity.py), with a loopback proxy in front of it where faults are injected."""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from support.builders import frame, row
from support.embedding import PAPERS, add_papers
from support.infinity import API_KEY, SERVED_NAME, FaultProxy, InfinityServer, openai_error

from papersys.cli import main
from papersys.config import ModelConfig
from papersys.embed.engines import inline_engine
from papersys.embed.engines.base import Engine
from papersys.embed.engines.http import OpenAIEngine
from papersys.errors import EngineConfigError, EngineError
from papersys.store import embeddings as store
from papersys.store.layout import Layout
from papersys.store.metadata import upsert

KAGGLE = Path(__file__).parents[1] / "fixtures" / "arxiv-real" / "kaggle_sample_lines.jsonl"
Servers = tuple[InfinityServer, InfinityServer]


def real_papers() -> list[dict[str, Any]]:
    records = [json.loads(line) for line in KAGGLE.read_text().splitlines() if line.strip()]
    return [
        row(r["id"], title=" ".join(r["title"].split()), abstract=r["abstract"].strip(), created=date(2007, 4, 2))
        for r in records
    ]


def http_model(base_url: str, **overrides: Any) -> ModelConfig:
    fields: dict[str, Any] = {
        "alias": "remote",
        "backend": "openai",
        "name": SERVED_NAME,
        "base_url": base_url,
        "api_key": API_KEY,
        "backoff_s": 0.05,
    }
    return ModelConfig.model_validate(fields | overrides)


def write_config(root: Path, **model: Any) -> Path:
    lines = [f'data_dir = "{root / "data"}"', "", "[[embedding.models]]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in model.items()]
    path = root / "papersys.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    code = exit_info.value.code
    out, err = capsys.readouterr()
    return (int(code) if isinstance(code, int) else 1), out, err


def remote_block(base_url: str, **overrides: Any) -> dict[str, Any]:
    block: dict[str, Any] = {
        "alias": "remote",
        "backend": "openai",
        "name": SERVED_NAME,
        "base_url": base_url,
        "api_key": "env:PAPERSYS_TEST_EMBED_KEY",
        "batch_size": 16,
        "request_batch_size": 8,
        "backoff_s": 0.05,
    }
    return block | overrides


def test_vectors_equal_the_in_process_model(infinity: Servers, minilm: Engine) -> None:
    texts = [f"{r['title']}\n{r['abstract']}" for r in real_papers()] + [f"{t}\n{a}" for _, t, a in PAPERS]
    engine = inline_engine(http_model(infinity[0].base_url, request_batch_size=5, concurrent_requests=4))
    try:
        assert isinstance(engine, OpenAIEngine) and engine.dim == 384
        served = engine.embed(texts)  # 13 requests, 4 at a time: must come back in input order
    finally:
        engine.close()
    local = minilm.embed(texts)
    assert served.dtype == np.float32 and served.shape == (len(texts), 384)
    cosine = (served * local).sum(axis=1) / np.linalg.norm(served, axis=1) / np.linalg.norm(local, axis=1)
    assert cosine.min() >= 0.999, cosine.min()


def test_retry_after_in_seconds_and_as_a_date_is_honoured(proxy: FaultProxy) -> None:
    limited = (429, {"Retry-After": "1"}, openai_error("rate limit reached"))
    proxy.inject(limited)  # the start probe meets the 429
    engine = OpenAIEngine(http_model(proxy.base_url, retries=2, backoff_s=0.01))
    try:
        first, second = proxy.arrivals
        assert second - first >= 1.0  # waited the server's second, not the 0.01 s backoff

        def until_in_2s() -> tuple[int, dict[str, str], bytes]:
            when = format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)
            return 503, {"Retry-After": when}, b"busy"

        proxy.inject(until_in_2s)
        vectors = engine.embed(["Self-attention networks for neural machine translation"])
        first, second = proxy.arrivals
        assert second - first >= 1.0  # an HTTP date has whole seconds: 2 s ahead is at least 1 s away
        assert vectors.shape == (1, 384) and abs(float(np.linalg.norm(vectors)) - 1) < 1e-5
    finally:
        engine.close()


def test_5xx_are_retried_with_backoff_and_exhausted_retries_carry_the_servers_message(proxy: FaultProxy) -> None:
    engine = OpenAIEngine(http_model(proxy.base_url, retries=2, backoff_s=0.2, concurrent_requests=1))
    try:
        overloaded = (503, {"Content-Type": "application/json"}, openai_error("model is overloaded, try later"))
        proxy.inject(overloaded, (502, {}, b"<html>Bad Gateway</html>"))
        assert engine.embed(["Dark matter halo profiles"]).shape == (1, 384)
        gaps = np.diff(proxy.arrivals)
        assert len(gaps) == 2 and gaps[0] >= 0.2 and gaps[1] >= 0.4  # doubling backoff

        proxy.inject(*[overloaded] * 3)
        with pytest.raises(EngineError) as info:
            engine.embed(["Dark matter halo profiles"])
        assert len(proxy.arrivals) == 3 and not isinstance(info.value, EngineConfigError)
        assert str(info.value) == (
            f"engine for model 'remote': POST {proxy.base_url}/embeddings failed after 3 attempts: "
            "HTTP 503: model is overloaded, try later"
        )
    finally:
        engine.close()


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        (openai_error("'input' is too long"), "HTTP 400: 'input' is too long"),  # OpenAI, newer vLLM
        (b'{"error": "Input validation error: too long", "error_type": "Validation"}', "validation error: too long"),
        (b'{"object": "error", "message": "vLLM says no", "code": 400}', "HTTP 400: vLLM says no"),  # older vLLM
        (b'{"detail": [{"msg": "field required"}, {"msg": "too short"}]}', "HTTP 400: field required; too short"),
        (b"<html>\n  plain\n  text </html>", "HTTP 400: <html> plain text </html>"),
    ],
)
def test_a_client_error_is_not_retried_and_shows_the_servers_message(
    proxy: FaultProxy, body: bytes, shown: str
) -> None:
    engine = OpenAIEngine(http_model(proxy.base_url, retries=3))
    try:
        proxy.inject((400, {"Content-Type": "application/json"}, body))
        with pytest.raises(EngineError) as info:
            engine.embed(["Black hole entropy from string theory"])
        assert len(proxy.arrivals) == 1 and str(info.value).lower().endswith(shown.lower())
    finally:
        engine.close()


def test_requests_go_out_concurrently_and_come_back_in_order(proxy: FaultProxy, minilm: Engine) -> None:
    texts = [f"{t}\n{a}" for _, t, a in PAPERS] * 3  # 18 texts: 9 requests of 2, at most 4 at once
    engine = OpenAIEngine(http_model(proxy.base_url, request_batch_size=2, concurrent_requests=4))
    try:
        served = engine.embed(texts)
    finally:
        engine.close()
    assert len(proxy.arrivals) == 1 + 9 and 2 <= proxy.max_in_flight <= 4
    assert np.allclose(served, minilm.embed(texts), atol=2e-3)


def test_a_refused_key_and_a_wrong_dim_are_config_errors(infinity: Servers) -> None:
    with pytest.raises(EngineConfigError, match=r"refused model 'minilm': HTTP 401: Unauthorized"):
        OpenAIEngine(http_model(infinity[0].base_url, api_key="wrong-key"))
    with pytest.raises(EngineConfigError, match=r"returns 384-dim vectors for 'minilm' but dim = 256"):
        OpenAIEngine(http_model(infinity[0].base_url, dim=256))


@pytest.mark.slow
def test_autopatch_then_semantic_search_through_the_cli(
    infinity: Servers, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAPERSYS_TEST_EMBED_KEY", API_KEY)
    config = str(write_config(tmp_path, **remote_block(infinity[0].base_url)))
    layout = Layout(tmp_path / "data")
    add_papers(layout)
    upsert(layout, frame(*real_papers()))

    code, out, err = run_cli(["--config", config, "embed", "autopatch"], capsys)
    assert code == 0, err
    assert out.startswith(f"remote: embedded {len(PAPERS) + 57} papers")
    code, out, _ = run_cli(["--config", config, "embed", "backlog", "--json"], capsys)
    (model,) = json.loads(out)["models"]
    assert code == 0 and model["total"]["gaps"] == 0 and model["total"]["valid"] == len(PAPERS) + 57

    code, _, err = run_cli(["--config", config, "index", "--model", "remote"], capsys)
    assert code == 0, err
    argv = ["--config", config, "search", "--model", "remote", "--mode", "semantic", "--json", "-k", "2"]
    code, out, err = run_cli([*argv, "transformer attention for translating languages"], capsys)
    assert code == 0, err
    hits = [hit["id"] for hit in json.loads(out)["results"]]
    assert set(hits) == {"2401.00001", "2401.00002"}  # the query went through the server too


def _kill_after_first_part(server: InfinityServer, pending: Path, stop: threading.Event) -> None:
    while not stop.is_set():
        if pending.is_dir() and any(pending.rglob("*.parquet")):
            server.kill()
            return
        time.sleep(0.01)


@pytest.mark.slow
def test_a_server_killed_mid_run_leaves_a_resumable_store(
    infinity: Servers, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    main_server, victim = infinity
    monkeypatch.setenv("PAPERSYS_TEST_EMBED_KEY", API_KEY)
    layout = Layout(tmp_path / "data")
    upsert(layout, frame(*real_papers()))
    tiny = {"batch_size": 2, "request_batch_size": 2, "chunk_size": 2, "retries": 1, "concurrent_requests": 1}
    config = str(write_config(tmp_path, **remote_block(victim.base_url, **tiny)))
    stop = threading.Event()
    killer = threading.Thread(
        target=_kill_after_first_part, args=(victim, layout.embedding_pending_dir("remote"), stop)
    )
    killer.start()
    try:
        code, _, err = run_cli(["--config", config, "embed", "autopatch"], capsys)
    finally:
        stop.set()
        killer.join()
    assert victim.proc.poll() is not None  # it was killed, not finished
    assert code == 1 and err.count("\n") == 1
    assert err.startswith(f"error: engine for model 'remote': POST {victim.base_url}/embeddings failed after 2")
    assert re.search(r"connection refused|closed the connection|reset the connection", err), err

    code, out, _ = run_cli(["--config", config, "embed", "backlog", "--json"], capsys)  # the store reads
    (model,) = json.loads(out)["models"]
    assert code == 0 and 0 < model["total"]["valid"] < 57 and model["total"]["gaps"] == 57 - model["total"]["valid"]

    config = str(write_config(tmp_path, **remote_block(main_server.base_url)))  # another server, same model
    code, out, err = run_cli(["--config", config, "embed", "autopatch"], capsys)
    assert code == 0, err
    assert out.startswith(f"remote: embedded {model['total']['gaps']} papers")
    years = layout.embedding_years("remote")
    assert years == [1996, 2007]  # hep-th/9608091 is the one old-style id
    rows = pl.concat([store.read_embeddings(layout, "remote", year, dim=384) for year in years])
    assert rows.height == 57 and rows["id"].n_unique() == 57 and rows["valid"].all()
    assert rows.filter(pl.col("id") == "0704.0001").height == 1


def test_bad_config_is_one_line_and_exit_2_through_the_cli(
    infinity: Servers, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    add_papers(Layout(tmp_path / "data"), PAPERS[:1])
    monkeypatch.delenv("PAPERSYS_TEST_EMBED_KEY", raising=False)
    block = remote_block(infinity[0].base_url)
    no_url = {k: v for k, v in block.items() if k != "base_url"} | {"api_key": API_KEY}
    cases = {
        "no base_url": (no_url, "embedding.models.0: backend 'openai' needs base_url"),
        "unset key": (block, "embedding.models.0.api_key: environment variable PAPERSYS_TEST_EMBED_KEY is not set"),
        "wrong dim": (block | {"api_key": API_KEY, "dim": 256}, "returns 384-dim vectors for 'minilm' but dim = 256"),
    }
    for case, (model, expected) in cases.items():
        config = str(write_config(tmp_path, **model))
        code, _, err = run_cli(["--config", config, "embed", "autopatch"], capsys)
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, (case, err)
        assert expected in err, (case, err)
        assert API_KEY not in err


def test_openai_config_keys_are_checked_at_load(tmp_path: Path) -> None:
    from papersys.config import config_from_mapping
    from papersys.errors import ConfigError

    def load(**model: Any) -> ModelConfig:
        raw = {"embedding": {"models": [{"alias": "remote", "backend": "openai", **model}]}}
        return config_from_mapping(raw, base_dir=tmp_path, env={"KEY": "s3cret"}).embedding.models[0]

    model = load(base_url="http://127.0.0.1:8000/v1/", api_key="env:KEY", name="./served-name")
    assert model.base_url == "http://127.0.0.1:8000/v1" and model.name == "./served-name"  # no path resolution
    assert model.api_key.get_secret_value() == "s3cret" and "s3cret" not in repr(model)
    assert "s3cret" not in model.model_dump_json()
    for bad, message in (
        ({"base_url": "http://127.0.0.1:8000/v1", "isolation": "spawn"}, "runs inline"),
        ({"base_url": "ftp://host/v1"}, r"must be an http\(s\) URL"),
        ({"base_url": "http://user:pw@host/v1"}, "without credentials"),
        ({"base_url": "http://h/v1", "api_key": "two words"}, "printable ASCII"),
    ):
        with pytest.raises(ConfigError, match=message):
            load(**bad)
    with pytest.raises(ConfigError, match="apply to backend 'openai' only"):
        config_from_mapping({"embedding": {"models": [{"base_url": "http://h/v1"}]}}, base_dir=tmp_path)
