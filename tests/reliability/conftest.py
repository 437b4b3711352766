"""Shared pieces of the reliability suite: running the real CLI, fingerprints of a data dir, and the checks
that every store file opens, holds no duplicate id and no row that an uninterrupted run would not have."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import polars as pl
import pytest

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


# storage faults: a real, size-limited file system per test -------------------------------------------------
REQUIRE_MOUNT = "PAPERSYS_REQUIRE_MOUNT"  # set by .ci/run: there a tmpfs that cannot be mounted fails the suite


class SmallFs:
    """Mounts size-limited tmpfs file systems under ``base``; ``close`` unmounts every one of them."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.mounts: list[Path] = []

    def mount(self, size: str, at: Path | None = None) -> Path:
        point = at or self.base / f"fs{len(self.mounts)}"
        point.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0 and not os.environ.get(REQUIRE_MOUNT):
            pytest.skip("mounting a tmpfs needs root (CI runs as root and sets PAPERSYS_REQUIRE_MOUNT)")
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(point)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            if os.environ.get(REQUIRE_MOUNT):
                pytest.fail(f"cannot mount a tmpfs at {point}: {done.stderr.strip()}")
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()})")
        self.mounts.append(point)
        return point

    @staticmethod
    def remount(point: Path, mode: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{mode}", str(point)], check=True, capture_output=True)

    def close(self) -> None:
        for point in reversed(self.mounts):
            if subprocess.run(["umount", str(point)], capture_output=True, check=False).returncode != 0:
                subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)
        self.mounts.clear()


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[SmallFs]:
    """Size-limited tmpfs mounts for one test, always unmounted at its end (skipped where mounting is
    impossible: not root; never in CI, which runs as root with PAPERSYS_REQUIRE_MOUNT=1)."""
    fs = SmallFs(tmp_path / "mnt")
    try:
        yield fs
    finally:
        fs.close()


def assert_storage_failure(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    """A run that a storage fault ended: exit 4, exactly one ``error:`` line (returned) holding ``words``
    and a hint (a parenthesis saying what to do), no traceback."""
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 4, (proc.returncode, proc.stderr[-3000:])
    assert len(errors) == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr[-3000:]
    for word in words:
        assert word in errors[0], errors[0]
    assert errors[0].rstrip().endswith(")") and "rerun" in errors[0], errors[0]
    return errors[0]
