"""The static tier: ``papersys model distill`` from the bundled MiniLM, and the model2vec engine.

One small distillation per session (the store's 1,000 most frequent new words, no subword vocabulary,
32 dims: a few seconds once torch is loaded) serves every test here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from support.builders import frame
from support.search_support import paper_rows

from papersys import service
from papersys.cli import cli, main
from papersys.config import ModelConfig, config_from_mapping
from papersys.embed.distill import DistillOptions, DistillReport, sweep_temp_dirs
from papersys.embed.engines import inline_engine
from papersys.errors import EngineError, Interrupted
from papersys.runtime import Runtime
from papersys.store.layout import Layout
from papersys.store.metadata import upsert

PAPERS = Path(__file__).resolve().parents[1] / "fixtures" / "search" / "papers_400.parquet"
SMALL = DistillOptions(dims=32, vocabulary_from_store=1000, subwords=False)


@dataclass(frozen=True)
class Distilled:
    root: Path  # holds data/ (the store of 400 real papers, the model under data/models/fast)
    report: DistillReport
    model: ModelConfig
    papers: pl.DataFrame


@pytest.fixture(scope="session")
def distilled(tmp_path_factory: pytest.TempPathFactory) -> Distilled:
    root = tmp_path_factory.mktemp("static")
    papers = pl.read_parquet(PAPERS)
    upsert(Layout(root / "data"), frame(*paper_rows(papers)))
    config = config_from_mapping({"data_dir": "data"}, base_dir=root)
    report = service.distill_model(config, source="minilm", target="fast", options=SMALL)
    (block,) = tomllib.loads(report.config_block)["embedding"]["models"]
    return Distilled(root, report, ModelConfig(**block), papers)


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_distil_writes_the_model_its_manifest_and_a_config_block_that_loads(distilled: Distilled) -> None:
    models = distilled.root / "data" / "models"
    assert sorted(p.name for p in models.iterdir()) == ["fast"]  # no temp dir left beside it
    manifest = json.loads((models / "fast" / "manifest.json").read_text())
    assert manifest["source_alias"] == "minilm" and manifest["dims"] == 32 and manifest["pca"] is True
    assert manifest["vocabulary"]["store_words"] == 1000 and manifest["vocabulary"]["store_papers"] == 400
    assert manifest["model2vec_version"] == "0.10.0" and manifest["created"].startswith("20")
    model = distilled.model
    assert model.backend == "model2vec" and model.dim == 32 and model.name == str((models / "fast").resolve())
    assert model.template == "{title}\n{title}\n{title}\n{abstract}"  # title-weighted: the default, thrice
    assert distilled.report.added_words == 1000


def test_distilled_model_keeps_a_paper_nearer_its_near_duplicate_than_other_papers(distilled: Distilled) -> None:
    engine = inline_engine(distilled.model)
    sample = distilled.papers.head(40).to_dicts()
    texts = [f"{p['title']}\n{p['abstract']}" for p in sample]
    # the near duplicate: the abstract with its first sentence dropped, and the title alone
    edited = [p["abstract"].split(". ", 1)[-1] for p in sample]
    titles = [p["title"] for p in sample]
    vectors = engine.embed(texts)
    assert vectors.dtype == np.float32 and vectors.shape == (40, 32)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)  # normalize = true
    docs = _unit(vectors)
    for near in (edited, titles):
        sims = _unit(engine.embed(near)) @ docs.T
        own_first = (sims.argmax(axis=1) == np.arange(40)).mean()
        assert own_first >= (0.95 if near is edited else 0.5), own_first  # chance: 0.025
    engine.close()


def test_static_engine_respects_max_length_and_checks_dim(distilled: Distilled) -> None:
    short = inline_engine(distilled.model.model_copy(update={"max_length": 3}))
    a, b = short.embed(["galaxy cluster lensing survey", "galaxy cluster quantum gravity"])
    assert np.allclose(a, b)  # only the first three tokens count
    full = inline_engine(distilled.model)
    a, b = full.embed(["galaxy cluster lensing survey", "galaxy cluster quantum gravity"])
    assert not np.allclose(a, b)
    with pytest.raises(EngineError, match="produces 32-dim vectors but dim = 64"):
        inline_engine(distilled.model.model_copy(update={"dim": 64}))


def test_static_engine_process_never_imports_torch(distilled: Distilled) -> None:
    code = (
        "import json, sys\n"
        "from papersys.config import ModelConfig\n"
        "from papersys.embed.engines import inline_engine\n"
        f"engine = inline_engine(ModelConfig(**json.loads({distilled.model.model_dump_json()!r})))\n"
        "vectors = engine.embed(['a static model', 'needs no torch'])\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules)\n"
        "print(json.dumps({'shape': list(vectors.shape), 'heavy': heavy}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"shape": [2, 32], "heavy": []}


def test_distil_then_config_then_autopatch_leaves_no_backlog(distilled: Distilled) -> None:
    config = distilled.root / "fast.toml"
    config.write_text(f'data_dir = "{distilled.root / "data"}"\n\n{distilled.report.config_block}')
    runner = CliRunner()
    result = runner.invoke(cli, ["--config", str(config), "embed", "autopatch"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("fast: embedded 400 papers"), result.output
    result = runner.invoke(cli, ["--config", str(config), "embed", "backlog", "--json"])
    (model,) = json.loads(result.output)["models"]
    assert model["model"] == "fast" and model["total"]["gaps"] == 0
    title = distilled.papers["title"][0]  # the search's query goes through the same static engine
    result = runner.invoke(cli, ["--config", str(config), "search", "--mode", "semantic", "--json", title])
    found = json.loads(result.output)
    assert found["model"] == "fast" and distilled.papers["id"][0] in [hit["id"] for hit in found["results"]]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    code = exit_info.value.code
    return int(code) if isinstance(code, int) else 1, capsys.readouterr().err


def test_bad_distil_input_is_a_one_line_error(distilled: Distilled, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(distilled.root / "data")
    base = ["--data-dir", data, "model", "distill"]
    cases = {
        "unknown model alias 'nope'": [*base, "--from", "nope", "--to", "x"],
        "model 'fast' already exists": [*base, "--from", "minilm", "--to", "fast"],
        "--dims 999: must be from 2 to 384": [*base, "--from", "minilm", "--to", "x", "--dims", "999"],
        "--to 'a/b': an alias is": [*base, "--from", "minilm", "--to", "a/b"],
        "--no-subwords needs --vocabulary-from-store": [*base, "--from", "minilm", "--to", "x", "--no-subwords"],
    }
    for message, argv in cases.items():
        code, err = _run(argv, capsys)
        assert code == 2 and err.startswith(f"error: {message}") and err.count("\n") == 1, err
    config = distilled.root / "static-only.toml"
    config.write_text(f'data_dir = "{data}"\n\n{distilled.report.config_block}')
    code, err = _run(["--config", str(config), "model", "distill", "--from", "fast", "--to", "x"], capsys)
    assert code == 2 and "only a sentence_transformer model can be distilled" in err and err.count("\n") == 1
    assert not (distilled.root / "data" / "models" / "x").exists()


def test_interrupted_distil_leaves_no_model_dir(distilled: Distilled) -> None:
    config = config_from_mapping({"data_dir": "data"}, base_dir=distilled.root)
    runtime = Runtime()
    runtime.cancel.set()  # checked once the model is written, before it is renamed into place
    tiny = DistillOptions(dims=8, vocabulary_from_store=50, subwords=False)  # 50 words: a quick distil
    with pytest.raises(Interrupted):
        service.distill_model(config, source="minilm", target="stopped", options=tiny, runtime=runtime)
    assert sorted(p.name for p in (distilled.root / "data" / "models").iterdir()) == ["fast"]


def test_sweep_removes_the_temp_dirs_of_dead_distils(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(done.stdout)
    (tmp_path / f".m.{dead}.0123abcd.tmp").mkdir()
    (tmp_path / f".m.{dead}.0123abcd.old").mkdir()
    (tmp_path / f".m.{os.getpid()}.0123abcd.tmp").mkdir()  # a live distil's: kept
    (tmp_path / "m").mkdir()
    assert sweep_temp_dirs(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".m.{os.getpid()}.0123abcd.tmp", "m"]
