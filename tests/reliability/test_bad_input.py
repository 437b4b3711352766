"""The bad-input corpus: broken configs, a data dir that is no directory, store files damaged or replaced by
hand, missing inputs. Every case, through every command it applies to (the real CLI or the migration script
as a subprocess), must give exactly one stderr line ``error: <file>: <problem>`` naming the file, a non-zero
exit and no traceback, and leave every file of the data dir as it was (sha256 before and after). The only
writes allowed are the job history recording the failed run and the (empty) lock files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from support.embedding import HashEngine
from support.legacy import gen1_row, vec, write_gen1
from support.oai_server import OAIServer
from support.papers import synthetic_papers
from support.snapshots import bulk_snapshot

from papersys import service
from papersys.config import load_config
from papersys.runtime import Runtime

from .conftest import MIGRATE_SCRIPT, REPO, changed_files, child_env, cli, fingerprint

PAPERS = synthetic_papers(60, seed=3, start=date(2024, 1, 1), days=20, deleted_fraction=0.05)
IS_ROOT = os.geteuid() == 0


@dataclass
class Env:
    """One case's world: a copy of the base store, its config, the server, a legacy dir and a snapshot."""

    root: Path
    url: str

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def config(self) -> Path:
        return self.root / "papersys.toml"

    @property
    def legacy(self) -> Path:
        return self.root / "legacy"

    @property
    def snapshot(self) -> Path:
        return self.root / "snapshot.json"

    def write_config(self, extra: str = "", ingest: str = "") -> None:
        self.config.write_text(
            f'data_dir = "data"\n{extra}[ingest]\nbase_url = "{self.url}"\nrequest_interval_s = 0.0\n{ingest}'
        )


COMMANDS: dict[str, Callable[[Env], list[str]]] = {
    "ingest": lambda e: cli("--config", e.config, "ingest", "--from", "2024-01-01", "--until", "2024-01-31"),
    "snapshot": lambda e: cli("--config", e.config, "ingest", "--snapshot", e.snapshot),
    "autopatch": lambda e: cli("--config", e.config, "embed", "autopatch"),
    "backlog": lambda e: cli("--config", e.config, "embed", "backlog"),
    "status": lambda e: cli("--config", e.config, "status"),
    "serve": lambda e: cli("--config", e.config, "serve"),
    "migrate": lambda e: [sys.executable, str(MIGRATE_SCRIPT), str(e.legacy), "--config", str(e.config),
                          "--model", "jasper_v1=jasper:NovaSearch/jasper_en_vision_language_v1"],
}  # fmt: skip
ALL = tuple(COMMANDS)
STORE_READERS = ("ingest", "snapshot", "autopatch", "backlog", "status", "migrate")


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def wrong_schema(path: Path) -> None:
    pl.DataFrame({"id": ["2401.00001"], "score": [0.5]}).write_parquet(path)


def contradicting_dim(path: Path) -> None:
    frame = pl.read_parquet(path)
    vectors = pl.Series("vector", np.ones((frame.height, 8), dtype=np.float32))
    frame.with_columns(vectors).write_parquet(path)  # Array(Float32, 8) where the manifest says 384


def replace_with_file(path: Path) -> None:
    shutil.rmtree(path)
    path.write_text("not a directory\n")


@dataclass(frozen=True)
class Case:
    name: str
    commands: tuple[str, ...]
    setup: Callable[[Env], None]
    names: Callable[[Env], Path]  # the file the error line must name
    says: str  # and a phrase of its problem
    recover: str = ""  # and, for a damaged store, a phrase of how to recover

    def __str__(self) -> str:
        return self.name


CASES = [
    Case("malformed_toml", ALL, lambda e: e.config.write_text('data_dir = "data"\n[ingest\nbase_url = 1\n'),
         lambda e: e.config, "invalid TOML"),
    Case("unknown_key", ("ingest", "migrate"), lambda e: e.write_config(ingest="request_intervall_s = 3.0\n"),
         lambda e: e.config, "ingest.request_intervall_s: unknown key"),
    Case("wrong_type", ("serve",), lambda e: e.write_config(ingest='timeout_s = "fast"\n'),
         lambda e: e.config, "ingest.timeout_s: Input should be a valid number"),
    Case("missing_env_secret", ("status", "backlog"),
         lambda e: e.write_config(ingest='auth_token = "env:PAPERSYS_UNSET_TOKEN"\n'),
         lambda e: e.config, "ingest.auth_token: environment variable PAPERSYS_UNSET_TOKEN is not set"),
    Case("unknown_model_alias", ("autopatch", "backlog"), lambda e: None,
         lambda e: e.config, "unknown model alias 'nope'"),
    Case("data_dir_is_a_file", ALL, lambda e: replace_with_file(e.data),
         lambda e: e.data, "data_dir is not a directory", "point data_dir"),
    Case("store_subdir_is_a_file", ("ingest", "status"),
         lambda e: replace_with_file(e.data / "metadata"), lambda e: e.data / "metadata", "is not a directory",
         "move it aside"),
    Case("metadata_truncated", STORE_READERS, lambda e: truncate(e.data / "metadata" / "2024.parquet"),
         lambda e: e.data / "metadata" / "2024.parquet", "not a readable Parquet file",
         "restore it from a backup, or move it aside and reload that year's papers"),
    Case("metadata_wrong_schema", ("ingest", "autopatch", "status"),
         lambda e: wrong_schema(e.data / "metadata" / "2024.parquet"),
         lambda e: e.data / "metadata" / "2024.parquet", "is not a papersys metadata file (lacks title",
         "move it aside"),
    Case("tombstones_truncated", ("snapshot", "status", "migrate"),
         lambda e: truncate(e.data / "state" / "deleted.parquet"),
         lambda e: e.data / "state" / "deleted.parquet", "not a readable Parquet file",
         "restore it from a backup, or move it aside"),
    Case("harvest_state_not_json", ("ingest", "status"),
         lambda e: (e.data / "state" / "harvest.json").write_text('{"checkpoints": {"all": '),
         lambda e: e.data / "state" / "harvest.json", "not valid JSON", "restore it from a backup or delete it"),
    Case("harvest_state_unreadable", ("ingest",),
         lambda e: ((e.data / "state" / "harvest.json").unlink(), (e.data / "state" / "harvest.json").mkdir()),
         lambda e: e.data / "state" / "harvest.json", "cannot read", "move it aside"),
    Case("embeddings_truncated", ("autopatch", "status"),
         lambda e: truncate(e.data / "embeddings" / "minilm" / "2024.parquet"),
         lambda e: e.data / "embeddings" / "minilm" / "2024.parquet", "not a readable Parquet file",
         "re-run autopatch to rebuild it"),
    Case("embedding_dim_contradicts_manifest", ("autopatch", "backlog"),
         lambda e: contradicting_dim(e.data / "embeddings" / "minilm" / "2024.parquet"),
         lambda e: e.data / "embeddings" / "minilm" / "2024.parquet", "but the manifest says dim 384",
         "move it aside"),
    Case("manifest_not_json", ("backlog", "status"),
         lambda e: (e.data / "embeddings" / "minilm" / "manifest.json").write_text("{"),
         lambda e: e.data / "embeddings" / "minilm" / "manifest.json", "not valid JSON",
         "restore it from a backup"),
    Case("snapshot_missing", ("snapshot",), lambda e: e.snapshot.unlink(),
         lambda e: e.snapshot, "no such file"),
    Case("legacy_dir_missing", ("migrate",), lambda e: shutil.rmtree(e.legacy),
         lambda e: e.legacy, "not a directory"),
]  # fmt: skip


@pytest.fixture(scope="module")
def server() -> Iterator[OAIServer]:
    with OAIServer(PAPERS, page_size=20) as srv:
        yield srv


@pytest.fixture(scope="module")
def base(server: OAIServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store as real runs leave it: harvested metadata with tombstones, a checkpoint, a job history, an
    embedding model's vectors, manifest and coverage cache; beside it a legacy dir and a snapshot file."""
    env = Env(tmp_path_factory.mktemp("base"), server.url)
    env.write_config()
    config = load_config(env.config)
    service.ingest(config, start=date(2024, 1, 1), until=date(2024, 1, 31), runtime=Runtime())
    service.embed_autopatch(config, engine_factory=lambda model, _log: HashEngine(model.dim))
    write_gen1(env.legacy / "2023.parquet", [gen1_row("2301.00001", jasper_v1=vec(1, 4))],
               vectors={"jasper_v1": ("list", 4)})  # fmt: skip
    bulk_snapshot(env.snapshot, 40)
    assert (env.data / "state" / "deleted.parquet").exists() and (env.data / "metadata" / "2024.parquet").exists()
    return env.root


def test_the_base_world_is_sound_for_every_command(base: Path, tmp_path: Path, server: OAIServer) -> None:
    """Without damage, the read-only commands succeed on the base store (so the failures below are the
    damage's doing, not the world's)."""
    env = Env(tmp_path, server.url)
    shutil.copytree(base, tmp_path, dirs_exist_ok=True)
    env.write_config()
    for name in ("backlog", "status"):
        proc = subprocess.run(COMMANDS[name](env), cwd=REPO, env=child_env(), capture_output=True, text=True)
        assert proc.returncode == 0, (name, proc.stderr)
    dry = subprocess.run([*COMMANDS["migrate"](env), "--dry-run"], cwd=REPO, env=child_env(), capture_output=True)
    assert dry.returncode == 0, dry.stderr


@pytest.mark.slow  # 46 CLI runs in all: half a minute on a quiet host
@pytest.mark.parametrize("case", CASES, ids=str)
def test_bad_input_gives_one_line_naming_the_file_and_changes_nothing(
    base: Path, tmp_path: Path, server: OAIServer, case: Case
) -> None:
    """The case through each command it applies to, each in its own copy of the world, concurrently."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        problems = list(pool.map(lambda c: try_command(base, tmp_path / c, server.url, case, c), case.commands))
    assert [p for p in problems if p] == []


def try_command(base: Path, root: Path, url: str, case: Case, command: str) -> str | None:
    """Run one command on a damaged copy of the world; a description of what went wrong, or None."""
    env = Env(root, url)
    shutil.copytree(base, root)
    env.write_config()
    case.setup(env)
    args = COMMANDS[command](env) + (["--model", "nope"] if case.name == "unknown_model_alias" else [])
    before = fingerprint(env.data)
    proc = subprocess.run(args, cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=120)
    lines = proc.stderr.splitlines()
    try:
        assert proc.returncode != 0, f"exit 0: {proc.stdout}"
        assert len(lines) == 1 and lines[0].startswith("error: "), f"stderr is not one error line: {proc.stderr}"
        assert str(case.names(env)) in lines[0] and case.says in lines[0], f"does not name the file: {lines[0]}"
        assert case.recover in lines[0], f"does not say how to recover: {lines[0]}"
        assert "Traceback" not in proc.stderr + proc.stdout
        assert_only_failure_recorded(before, fingerprint(env.data), env.data)
    except AssertionError as exc:
        return f"{command}: {exc}"
    return None


def assert_only_failure_recorded(before: dict[str, str], after: dict[str, str], data: Path) -> None:
    """Nothing changed but an appended job-history line saying the run failed and empty lock files."""
    for path, what in changed_files(before, after).items():
        if path == "state/jobs.jsonl" and what == "changed":
            lines = (data / path).read_text().splitlines()
            assert json.loads(lines[-1])["outcome"] == "error"
            continue
        assert what == "added" and path.startswith(".locks/") and path.endswith(".lock"), (path, what)
        assert (data / path).stat().st_size == 0


@pytest.mark.skipif(IS_ROOT, reason="root reads and writes whatever the permission bits say")
@pytest.mark.parametrize("command", ALL)
def test_an_unreadable_data_dir_is_one_line_naming_it(
    base: Path, tmp_path: Path, server: OAIServer, command: str
) -> None:
    env = Env(tmp_path, server.url)
    shutil.copytree(base, tmp_path, dirs_exist_ok=True)
    env.write_config()
    env.data.chmod(0)
    try:
        proc = subprocess.run(COMMANDS[command](env), cwd=REPO, env=child_env(), capture_output=True, text=True)
    finally:
        env.data.chmod(0o755)
    lines = proc.stderr.splitlines()
    assert proc.returncode != 0 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert f"{env.data}: data_dir is not readable" in proc.stderr and "Traceback" not in proc.stderr
