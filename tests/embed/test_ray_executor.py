"""The Ray executor (``[embedding] executor = "ray"``) on a local Ray of two CPUs, started once for the module:
the real MiniLM loaded by two actors from the model config gives the same store as a local run; a Ray that does
not answer and a Ray that is not installed are one-line errors that leave the store untouched."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from support.builders import frame
from support.search_support import paper_rows

from papersys import service
from papersys.cli.console import print_error
from papersys.config import Config, config_from_mapping
from papersys.embed.autopatch import EngineFactory, run_autopatch
from papersys.embed.coverage import coverage_by_year
from papersys.errors import ExecutorError, ExecutorMissingError
from papersys.runtime import Runtime
from papersys.store import embeddings as store
from papersys.store.layout import Layout
from papersys.store.metadata import upsert

PAPERS = Path(__file__).resolve().parents[1] / "fixtures" / "search" / "papers_400.parquet"
# small chunks and batches: 60 papers (4 years) make 4 chunks across years, several blocks each, 2 actors
MODEL = {"chunk_size": 16, "batch_size": 8, "ray_actors": 2}


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One local Ray (2 CPUs, a 200 MB object store) for the module; the executor joins it, never stops it."""
    from papersys.embed.executors.raydata import import_ray

    ray = import_ray()  # sets RAY_ENABLE_UV_RUN_RUNTIME_ENV=0 before Ray reads it
    ray.init(num_cpus=2, object_store_memory=200 * 2**20, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def make_store(root: Path, executor: str, address: str = "", papers: int = 60) -> Config:
    embedding = {"executor": executor, "ray_address": address, "models": [MODEL]}
    config = config_from_mapping({"data_dir": "data", "embedding": embedding}, base_dir=root)
    upsert(Layout(config.data_dir), frame(*paper_rows(pl.read_parquet(PAPERS).head(papers))))
    return config


def patch(config: Config, factory: EngineFactory | None = None, runtime: Runtime | None = None) -> int:
    kwargs = {"engine_factory": factory} if factory else {}
    layout, models = Layout(config.data_dir), list(config.embedding.models)
    report = run_autopatch(layout, models, runtime or Runtime(), embedding=config.embedding, **kwargs)
    return report.embedded


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def store_files(root: Path) -> dict[str, bytes]:
    return {k: v for k, v in tree(root).items() if not k.startswith(("state/", ".locks/"))}


@pytest.mark.slow
def test_a_ray_run_equals_a_local_run_even_when_an_actor_is_killed(
    local_ray: None, tmp_path: Path, factory: EngineFactory
) -> None:
    """One Ray run (start-up is most of its cost) checks both: the same store as a local run, and an actor
    process SIGKILLed once the first vectors are back is restarted by Ray Data, its block retried."""
    local = make_store(tmp_path / "local", "local")
    on_ray = make_store(tmp_path / "ray", "ray")
    assert patch(local, factory) == 60
    progress = KillOnFirstBlock()
    assert patch(on_ray, runtime=Runtime(progress=progress)) == 60  # the actors load MiniLM themselves
    assert progress.killed and progress.advanced == 60
    layout_l, layout_r = Layout(local.data_dir), Layout(on_ray.data_dir)
    years = layout_l.embedding_years("minilm")
    assert len(years) == 4 and layout_r.embedding_years("minilm") == years
    assert store.pending_parts(layout_r, "minilm") == []
    for year in years:
        mine = store.read_embeddings(layout_r, "minilm", year, dim=384).sort("id")
        theirs = store.read_embeddings(layout_l, "minilm", year, dim=384).sort("id")
        assert mine.select("id", "text_hash", "valid").equals(theirs.select("id", "text_hash", "valid"))
        a, b = mine["vector"].to_numpy(), theirs["vector"].to_numpy()
        cosine = (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        assert cosine.min() >= 0.9999, (year, cosine.min())
    manifest_l, manifest_r = store.read_manifest(layout_l, "minilm"), store.read_manifest(layout_r, "minilm")
    assert manifest_l is not None and manifest_r is not None
    assert manifest_r.identity() == manifest_l.identity()
    manifest = store.read_manifest(layout_r, "minilm")
    assert manifest is not None
    model = on_ray.embedding.models[0]
    assert coverage_by_year(layout_r, model, manifest) == coverage_by_year(layout_l, model, manifest)
    assert patch(on_ray) == 0  # nothing left, nothing duplicated


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_ray_address_is_one_line_and_leaves_the_store_untouched(tmp_path: Path) -> None:
    config = make_store(tmp_path, "ray", f"127.0.0.1:{closed_port()}")
    before = tree(config.data_dir)
    with pytest.raises(ExecutorError) as caught:
        service.embed_autopatch(config)
    message = str(caught.value)
    assert "does not answer" in message and "127.0.0.1:" in message and "\n" not in message
    assert print_error(caught.value) == 1
    # the job history (state/) records the failed run, the lock file stays empty: the store is as it was
    assert store_files(config.data_dir) == {k: v for k, v in before.items() if not k.startswith("state/")}
    assert not (config.data_dir / "embeddings").exists()


def test_without_ray_installed_the_error_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``sys.modules["ray"] = None`` is how Python marks a module unimportable: ``import ray`` raises
    ImportError exactly as it does where the extra is not installed, without a second interpreter."""
    monkeypatch.setitem(sys.modules, "ray", None)
    config = make_store(tmp_path, "ray")
    with pytest.raises(ExecutorMissingError) as caught:
        service.embed_autopatch(config)
    assert "uv sync --extra ray" in str(caught.value) and "\n" not in str(caught.value)
    assert print_error(caught.value) == 2
    assert not (config.data_dir / "embeddings").exists()
    shutil.rmtree(tmp_path / "data")


def our_actor_pids() -> list[int]:
    """Pids of the Ray Data actors (``ray::MapWorker…``) descended from this process: its local Ray's only."""
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "cmdline").read_bytes().startswith(b"ray::MapWorker"):
                continue
            pid = int(entry.name)
            while pid > 1:
                pid = int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if pid == me:
                    found.append(int(entry.name))
                    break
        except (OSError, ValueError):
            continue
    return found


class KillOnFirstBlock:
    """A progress task that SIGKILLs one actor process when the first block of vectors comes back."""

    def __init__(self) -> None:
        self.killed: list[int] = []
        self.advanced = 0

    def task(self, description: str, *, total: float | None = None, unit: str = "") -> KillOnFirstBlock:
        return self

    def advance(self, amount: float = 1) -> None:
        self.advanced += int(amount)
        if not self.killed:
            pids = our_actor_pids()
            assert pids, "no actor process found"
            os.kill(pids[0], signal.SIGKILL)
            self.killed.append(pids[0])

    def update(self, *, total: float | None = None, description: str | None = None) -> None:
        return None

    def close(self) -> None:
        return None
