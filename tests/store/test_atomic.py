"""Atomic writes: a failed write leaves the old file intact and no temp file behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from papersys.errors import StoreError
from papersys.store.atomic import atomic_path, read_json, sweep_temp_files, write_json, write_parquet


def test_write_parquet_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "x" / "a.parquet"
    write_parquet(pl.DataFrame({"a": [1, 2]}), path)
    write_parquet(pl.DataFrame({"a": [3]}), path)
    assert pl.read_parquet(path)["a"].to_list() == [3]
    assert [p.name for p in path.parent.iterdir()] == ["a.parquet"]


def test_failure_mid_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_json({"v": 1}, path)
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text('{"v": ')
        raise RuntimeError("killed")
    assert read_json(path) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_read_json_of_missing_file_is_none_and_garbage_is_a_store_error(tmp_path: Path) -> None:
    assert read_json(tmp_path / "none.json") is None
    bad = tmp_path / "bad.json"
    bad.write_text("{torn")
    with pytest.raises(StoreError, match=r"bad\.json: not valid JSON"):
        read_json(bad)


def test_temp_files_of_dead_writers_are_swept(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".2024.parquet.{dead_pid}.deadbeef.tmp"
    live = tmp_path / f".2024.parquet.{os.getpid()}.cafebabe.tmp"
    stale.write_text("x")
    live.write_text("x")
    assert sweep_temp_files(tmp_path) == 1
    assert not stale.exists()
    assert live.exists()
