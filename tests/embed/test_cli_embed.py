"""``papersys embed autopatch`` / ``backlog`` through the real CLI, checked through the library."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from support.embedding import add_papers

from papersys.cli import cli, main
from papersys.embed.engines.base import Engine
from papersys.store import embeddings as store
from papersys.store.embeddings import EmbeddingStore
from papersys.store.layout import Layout


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    add_papers(Layout(tmp_path / "data"))
    return tmp_path / "data"


def test_backlog_json_then_autopatch_with_the_real_model(data_dir: Path, minilm: Engine) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["--data-dir", str(data_dir), "embed", "backlog", "--json"])
    assert result.exit_code == 0, result.output
    (model,) = json.loads(result.output)["models"]
    assert model["model"] == "minilm" and model["total"]["missing"] == 6 and model["total"]["gaps"] == 6
    assert model["years"]["2024"]["missing"] == 3

    result = runner.invoke(
        cli, ["--data-dir", str(data_dir), "embed", "autopatch", "--model", "minilm", "--limit", "2"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("minilm: embedded 2 papers") and "4 left" in result.output
    rows = store.read_embeddings(Layout(data_dir), "minilm", 2024, dim=384)
    assert rows.height == 2 and rows["valid"].all()

    result = runner.invoke(cli, ["--data-dir", str(data_dir), "embed", "backlog"])
    assert result.output.splitlines()[0] == (
        "minilm: 4 of 6 papers need embedding (missing 4, stale 0, invalid 0); 0 orphans"
    )


def test_dry_run_json_reports_without_writing(data_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["--data-dir", str(data_dir), "embed", "autopatch", "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["dry_run"] is True and report["models"][0]["embedded"] == 6
    assert not (data_dir / "embeddings").exists()


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    code = exit_info.value.code
    return int(code) if isinstance(code, int) else 1, capsys.readouterr().err


def test_unknown_alias_and_manifest_mismatch_are_one_line_errors(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_main(["--data-dir", str(data_dir), "embed", "backlog", "--model", "nope"], capsys)
    assert code == 2 and err == "error: unknown model alias 'nope' (configured in the embedded defaults: minilm)\n"
    vectors = pl.DataFrame({"id": ["2401.00001"], "text_hash": ["h"], "vector": pl.Series(np.ones((1, 768))),
                            "embedded_at": [datetime(2024, 1, 1, tzinfo=UTC)]})  # fmt: skip
    EmbeddingStore(Layout(data_dir), "minilm", 768).write_part(2024, vectors)  # vectors behind it
    manifest = data_dir / "embeddings" / "minilm" / "manifest.json"
    manifest.write_text(json.dumps({
        "name": "sentence-transformers/all-MiniLM-L6-v2", "backend": "sentence_transformer", "dim": 768,
        "dtype": "float32", "normalize": True, "template": "{title}\n{abstract}", "prefix": "", "max_length": 256,
    }))  # fmt: skip
    code, err = run_main(["--data-dir", str(data_dir), "embed", "autopatch"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "manifest.json: dim: stored 768 != configured 384" in err and "--reembed" in err
