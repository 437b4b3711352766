"""`papersys ingest` through the CLI: reports, one-line errors with exit 2, and resume after a kill."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from support.oai_records import Paper
from support.oai_server import OAIServer

from papersys.store.layout import Layout
from papersys.store.metadata import scan_all
from papersys.store.state import load_state


def write_config(tmp_path: Path, url: str, **extra: str) -> Path:
    lines = [f'base_url = "{url}"', "request_interval_s = 0.0", "backoff_base_s = 0.1", "window_days = 15"]
    lines += [f"{k} = {v}" for k, v in extra.items()]
    path = tmp_path / "papersys.toml"
    path.write_text('data_dir = "data"\n[ingest]\n' + "\n".join(lines) + "\n")
    return path


def run_main(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "papersys", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_cli_ingest_prints_a_report(tmp_path: Path, server: OAIServer, papers: list[Paper]) -> None:
    config = write_config(tmp_path, server.url)
    proc = run_main("--config", str(config), "ingest", "--from", "2024-01-01", "--until", "2024-02-29")
    assert proc.returncode == 0, proc.stderr
    assert "120 records: 120 new, 0 updated, 0 unchanged, 0 deleted" in proc.stdout
    assert "years touched: " in proc.stdout and "2024: " in proc.stdout
    assert scan_all(Layout(tmp_path / "data")).select(pl.len()).collect().item() == 120


def test_cli_ingest_json(tmp_path: Path, server: OAIServer) -> None:
    config = write_config(tmp_path, server.url)
    proc = run_main("--config", str(config), "ingest", "--from", "2024-01-01", "--until", "2024-01-05", "--json")
    assert proc.returncode == 0, proc.stderr
    import json

    data = json.loads(proc.stdout)
    assert data["new"] > 0 and data["sets"][0]["until"] == "2024-01-05"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ingest", "--from", "2024-13-01"], "'2024-13-01' is not a date of the form YYYY-MM-DD"),
        (["ingest", "--from", "2024-02-01", "--until", "2024-01-01"], "--from 2024-02-01 is after --until 2024-01-01"),
        (["ingest", "--set", "Computer Science"], "is not an arXiv set spec"),
        (["ingest", "--snapshot", "x.json", "--from", "2024-01-01"], "--snapshot cannot be combined"),
        (["ingest", "--bogus"], "No such option '--bogus'"),
    ],
)
def test_bad_arguments_are_one_line_errors_with_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    proc = run_main("--data-dir", str(tmp_path / "data"), *args)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: "), proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_config_key_is_exit_2_naming_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[ingest]\nrequest_intervall_s = 3\n")
    proc = run_main("--config", str(bad), "ingest")
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {bad}: ingest.request_intervall_s: unknown key"


def test_help_and_version_exit_0() -> None:
    assert run_main("--help").returncode == 0
    version = run_main("--version")
    assert version.returncode == 0 and "papersys" in version.stdout


@pytest.mark.slow
@pytest.mark.parametrize("crash_at", ["harvest.page:3", "metadata.year_written:2", "harvest.before_checkpoint:2"])
def test_a_killed_harvest_resumes_to_the_store_of_an_uninterrupted_run(
    tmp_path: Path, server: OAIServer, crash_at: str
) -> None:
    args = ["ingest", "--from", "2024-01-01", "--until", "2024-02-29"]
    (tmp_path / "clean").mkdir()
    clean = write_config(tmp_path / "clean", server.url)
    assert run_main("--config", str(clean), *args).returncode == 0
    crashed_dir = tmp_path / "crashed"
    crashed_dir.mkdir()
    crashed = write_config(crashed_dir, server.url)
    killed = run_main("--config", str(crashed), *args, env={"PAPERSYS_CRASH_AT": crash_at})
    assert killed.returncode == 137
    layout = Layout(crashed_dir / "data")
    assert load_state(layout).in_progress is not None  # it died mid-window
    rerun = run_main("--config", str(crashed), *args)
    assert rerun.returncode == 0, rerun.stderr
    want = scan_all(Layout(tmp_path / "clean" / "data")).collect()
    got = scan_all(layout).collect()
    assert got.equals(want)
    assert got["id"].n_unique() == got.height == 120
    assert load_state(layout).in_progress is None
