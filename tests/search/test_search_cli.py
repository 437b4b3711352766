"""`papersys search|similar|index` as a user runs them: JSON out, one-line errors, nothing written on
bad input, a SIGKILLed index update leaves the previous index usable and the rerun repairs it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from papersys.config import config_from_mapping
from papersys.search.manifest import read_index_manifest, write_index_manifest
from papersys.search.vectors import VectorIndex
from papersys.store.layout import Layout


def fingerprint(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def papersys(data: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    config = data.parent / "papersys.toml"  # the store was built with an ANN index even for 200 papers
    config.write_text('data_dir = "data"\n[search]\nann_min_rows = 0\ntail_rows = 0\n')
    return subprocess.run(
        [sys.executable, "-m", "papersys", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def data(built: Path, tmp_path: Path) -> Path:
    shutil.copytree(built / "data", tmp_path / "data", symlinks=True)
    return tmp_path / "data"


def test_search_json_and_plain_output(data: Path) -> None:
    proc = papersys(data, "search", "diffusion models for image generation", "-k", "4", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["k"] == 4 and len(result["results"]) == 4 and result["mode"] == "semantic"
    assert result["results"][0]["url"] == "https://arxiv.org/abs/" + result["results"][0]["id"]
    assert "sentence_transformers" not in proc.stderr  # the exported ONNX encoder answered the query
    first = result["results"][0]["id"]
    plain = papersys(data, "similar", first, "-k", "2", "--category", "cs")
    assert plain.returncode == 0, plain.stderr
    lines = plain.stdout.splitlines()
    assert len(lines) == 2 and lines[0].lstrip().startswith("1 ") and first not in plain.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", ""], "the query is empty"),
        (["search", "x", "-k", "0"], "between 1 and 1000"),
        (["search", "x", "-k", "5000"], "between 1 and 1000"),
        (["search", "x", "--model", "nope"], "unknown model alias"),
        (["search", "x", "--category", "cs..LG"], "not an arXiv category"),
        (["search", "x", "--since", "2024-05-01", "--until", "2024-01-01"], "after --until"),
        (["similar", "2412.00001"], "not in the store"),
        (["similar", "garbage id"], "not an arXiv id"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(data: Path, args: list[str], message: str) -> None:
    before = fingerprint(data)
    proc = papersys(data, *args)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert fingerprint(data) == before


def test_a_missing_or_foreign_index_is_refused_by_name(data: Path, tmp_path: Path) -> None:
    layout = Layout(data)
    manifest = read_index_manifest(layout, "minilm")
    assert manifest is not None
    write_index_manifest(layout, manifest.touched(dim=768, name="other/model"))
    proc = papersys(data, "search", "x")
    assert proc.returncode == 1 and "dim 768 (configured: 384)" in proc.stderr and "other/model" in proc.stderr
    assert "papersys index --rebuild" in proc.stderr
    shutil.rmtree(layout.index_root)
    proc = papersys(data, "search", "x")
    assert proc.returncode == 1 and "no vector index for model 'minilm'" in proc.stderr
    assert "papersys index" in proc.stderr and not layout.index_root.exists()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sigkill_during_an_index_rebuild_keeps_the_old_index_and_the_rerun_repairs(data: Path) -> None:
    layout = Layout(data)
    config = config_from_mapping({"data_dir": str(data)}, base_dir=data)
    before = read_index_manifest(layout, "minilm")
    assert before is not None
    for crash in ("index.rows_written", "index.ann_saved", "atomic.before_replace"):
        proc = papersys(data, "index", "--rebuild", env={"PAPERSYS_CRASH_AT": f"{crash}:1"})
        assert proc.returncode != 0, crash
        index = VectorIndex.open(layout, config.model("minilm"))  # the previous index, still whole
        assert index.manifest == before and index.live == before.live
        assert papersys(data, "search", "graph neural networks", "-k", "3", "--json").returncode == 0
    proc = papersys(data, "index", "--rebuild", "--json")
    assert proc.returncode == 0, proc.stderr
    after = read_index_manifest(layout, "minilm")
    assert after is not None and after.generation > before.generation and after.live == before.live
    names = {p.name for p in layout.vector_index_dir("minilm").iterdir() if p.is_file()}
    assert all(n.startswith(f"g{after.generation:04d}-") or n == "manifest.json" for n in names), names
    report = json.loads(proc.stdout)
    assert report["models"][0]["action"] == "built" and report["models"][0]["indexed"] == before.live
