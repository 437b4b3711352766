"""``scripts/migrate_reference_embeddings.py`` as a user runs it: a subprocess, a config file, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from support.legacy import build_fixture, gen1_row, vec, write_gen1

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "migrate_reference_embeddings.py"


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PAPERSYS_CONFIG"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def test_unusable_inputs_are_reported_skipped_and_make_the_exit_status_non_zero(tmp_path: Path) -> None:
    build_fixture(tmp_path / "legacy")
    config = tmp_path / "papersys.toml"
    config.write_text('data_dir = "store"\n')
    dry = run(tmp_path / "legacy", "--config", config, "--dry-run", "--report", tmp_path / "dry.json")
    assert dry.returncode == 1, dry.stderr
    assert not (tmp_path / "store").exists()
    done = run(tmp_path / "legacy", "--config", config, "--report", tmp_path / "report.json")
    assert done.returncode == 1, done.stderr
    assert "2021.parquet: UNUSABLE, skipped" in done.stdout and done.stdout.rstrip().endswith("fix them and run again")
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["ok"] is False and report["data_dir"] == str(tmp_path / "store")
    assert [i["file"] for i in report["inputs"] if not i["usable"]] == ["2020.parquet", "2021.parquet"]
    assert report["counts"]["metadata_new"] == 16 and report["new"] == 32
    # the dry run printed the same report, bar its first and last lines (dry-run marker, timing)
    assert dry.stdout.splitlines()[1:-2] == done.stdout.splitlines()[1:-2]
    assert json.loads((tmp_path / "dry.json").read_text())["counts"] == report["counts"]
    assert (tmp_path / "store" / "embeddings" / "conan_v1" / "manifest.json").exists()


def test_a_clean_directory_exits_0_and_errors_are_one_line(tmp_path: Path) -> None:
    legacy = tmp_path / "legacy"
    write_gen1(
        legacy / "2023.parquet", [gen1_row("2301.00001", jasper_v1=vec(1, 4))], vectors={"jasper_v1": ("list", 4)}
    )
    config = tmp_path / "papersys.toml"
    config.write_text('data_dir = "store"\n')
    ok = run(legacy, "--config", config, "--model", "jasper_v1=jasper:NovaSearch/jasper_en_vision_language_v1")
    assert ok.returncode == 0, ok.stderr
    assert (
        "model jasper (NovaSearch/jasper_en_vision_language_v1, dim 4, float32): 1 vectors new or replaced" in ok.stdout
    )
    bad = run(legacy, "--config", config, "--model", "jasper_v1")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and bad.stderr.startswith("error: --model 'jasper_v1'")
    missing = run(legacy, "--config", tmp_path / "nope.toml")
    assert missing.returncode == 2 and "no such file" in missing.stderr
