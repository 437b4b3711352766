"""Shared pieces of the reliability suite: running the real CLI, fingerprints of a data dir, and the checks
that every store file opens, holds no duplicate id and no row that an uninterrupted run would not have."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import polars as pl

from papersys.store.ids import year_expr
from papersys.store.jobs import read_jobs
from papersys.store.layout import Layout
from papersys.store.metadata import DELETION_SCHEMA, METADATA_SCHEMA

REPO = Path(__file__).resolve().parents[2]
MIGRATE_SCRIPT = REPO / "scripts" / "migrate_reference_embeddings.py"


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a CLI child: no ambient config, the test's extras (a crash point, a secret)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PAPERSYS_CONFIG", "PAPERSYS_CRASH_AT")}
    env.update(extra or {})
    return env


def cli(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "papersys", *map(str, args)]


def run_cli(
    *args: str | Path, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli(*args), cwd=REPO, env=child_env(env), capture_output=True, text=True, timeout=timeout, check=False
    )


def fingerprint(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (relative path → digest); {} when ``root`` is not a directory."""
    if not root.is_dir():
        return {}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def temp_files(root: Path) -> list[str]:
    """Temp files of atomic writes (``.<name>.<pid>.<hex>.tmp``) anywhere under ``root``."""
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*.tmp"))


def assert_store_sound(root: Path) -> None:
    """Every Parquet and JSON file opens; year files have the exact schema, sorted unique ids of their year;
    embedding files and parts one row per id; the job history parses. Temp files are not store files."""
    layout = Layout(root)
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name.endswith(".tmp"):
            continue
        if path.suffix == ".parquet":
            frame = pl.read_parquet(path)  # raises on a torn file
            spooled = layout.state_dir in path.parents and path != layout.deletions_file
            if "id" in frame.columns and not spooled:  # a spool may hold two copies of a paper revised mid-run
                assert frame["id"].n_unique() == frame.height, f"duplicate ids in {path}"
        elif path.suffix == ".json":
            json.loads(path.read_text())
    for year in layout.metadata_years():
        frame = pl.read_parquet(layout.metadata_file(year))
        assert dict(frame.schema) == dict(METADATA_SCHEMA), year
        assert frame["id"].to_list() == sorted(frame["id"].to_list()), year
        assert frame.select(year_expr("id")).to_series().eq(year).all(), f"a paper of another year in {year}"
    if layout.deletions_file.exists():
        assert dict(pl.read_parquet_schema(layout.deletions_file)) == dict(DELETION_SCHEMA)
    if layout.jobs_log.exists():
        lines = layout.jobs_log.read_text().splitlines()
        assert len(read_jobs(layout.jobs_log)) >= len(lines) - 1  # at most a torn last line


def changed_files(before: Mapping[str, str], after: Mapping[str, str]) -> dict[str, str]:
    """Files added, removed or rewritten between two fingerprints (path → what happened)."""
    out = {p: "removed" for p in before if p not in after}
    out.update({p: "added" for p in after if p not in before})
    out.update({p: "changed" for p in before if p in after and before[p] != after[p]})
    return out
