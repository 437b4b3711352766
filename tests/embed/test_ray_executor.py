"""The Ray executor (``[embedding] executor = "ray"``) on a local Ray of two CPUs, started once for the module:
the real MiniLM loaded by two actors from the model config gives the same store as a local run, through an actor
killed mid-run, a cancel, a driver killed mid-run and a mixed run (one model on Ray, one local); a Ray that does
not answer and a Ray that is not installed are one-line errors that leave the store untouched, also from
``serve``'s embed job."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
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
from papersys.daemon.scheduler import EMBED, JOBS
from papersys.embed.autopatch import EngineFactory, run_autopatch
from papersys.embed.coverage import coverage_by_year
from papersys.errors import ExecutorError, ExecutorMissingError, Interrupted
from papersys.runtime import Runtime
from papersys.store import embeddings as store
from papersys.store.layout import Layout
from papersys.store.metadata import upsert

REPO = Path(__file__).resolve().parents[2]
PAPERS = REPO / "tests" / "fixtures" / "search" / "papers_400.parquet"
# small chunks and batches: 60 papers (4 years) make 4 chunks across years, several blocks each, 2 actors
MODEL = {"chunk_size": 16, "batch_size": 8, "ray_actors": 2}


@pytest.fixture(scope="module")
def local_ray() -> Iterator[str]:
    """One local Ray (2 CPUs, a 200 MB object store) for the module; the executor joins it, never stops it.
    Yields its GCS address, which a CLI child joins with ``ray_address``."""
    from papersys.embed.executors.raydata import import_ray

    ray = import_ray()  # sets RAY_ENABLE_UV_RUN_RUNTIME_ENV=0 before Ray reads it
    ray.init(num_cpus=2, object_store_memory=200 * 2**20, include_dashboard=False, log_to_driver=False)
    yield str(ray.get_runtime_context().gcs_address)
    ray.shutdown()


def make_store(
    root: Path, executor: str, address: str = "", papers: int = 60, models: tuple[dict[str, object], ...] = (MODEL,)
) -> Config:
    embedding = {"executor": executor, "ray_address": address, "models": list(models)}
    config = config_from_mapping({"data_dir": "data", "embedding": embedding}, base_dir=root)
    upsert(Layout(config.data_dir), frame(*paper_rows(pl.read_parquet(PAPERS).head(papers))))
    return config


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, factory: EngineFactory) -> Layout:
    """The 60 papers embedded by a local run with the shared MiniLM: what every Ray run must equal."""
    config = make_store(tmp_path_factory.mktemp("reference"), "local")
    assert patch(config, factory) == 60
    layout = Layout(config.data_dir)
    assert len(layout.embedding_years("minilm")) == 4 and store.pending_parts(layout, "minilm") == []
    return layout


def assert_like_reference(layout: Layout, alias: str, reference: Layout, *, complete: bool = True) -> int:
    """Every stored row of ``alias`` is valid and the reference's (same id and text hash, cosine >= 0.9999);
    with ``complete``, every paper is there. No id is stored twice, in the year file and the parts together
    (what readers see is one row per id either way). Returns the rows stored."""
    count = 0
    for year in store.stored_years(layout, alias):
        files = [layout.embedding_file(alias, year), *store.pending_parts(layout, alias, year)]
        ids = pl.concat([pl.read_parquet(f, columns=["id"]) for f in files if f.exists()])["id"]
        assert ids.n_unique() == ids.len(), f"{alias} {year}: an id stored twice"
        mine = store.read_embeddings(layout, alias, year, dim=384).sort("id")
        theirs = store.read_embeddings(reference, "minilm", year, dim=384).sort("id")
        if not complete:
            theirs = theirs.filter(pl.col("id").is_in(mine["id"].implode()))
        assert mine["valid"].all(), (alias, year)
        assert mine.select("id", "text_hash").equals(theirs.select("id", "text_hash")), (alias, year)
        a, b = mine["vector"].to_numpy(), theirs["vector"].to_numpy()
        cosine = (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        assert cosine.min() >= 0.9999, (alias, year, cosine.min())
        count += mine.height
    if complete:
        assert store.stored_years(layout, alias) == reference.embedding_years("minilm")
    return count


def patch(config: Config, factory: EngineFactory | None = None, runtime: Runtime | None = None) -> int:
    kwargs = {"engine_factory": factory} if factory else {}
    layout, models = Layout(config.data_dir), list(config.embedding.models)
    report = run_autopatch(layout, models, runtime or Runtime(), embedding=config.embedding, **kwargs)
    return report.embedded


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def store_files(root: Path) -> dict[str, bytes]:
    return {k: v for k, v in tree(root).items() if not k.startswith(("state/", ".locks/"))}


def test_auto_with_no_ray_running_is_one_line_and_leaves_the_store_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ray_address = "auto"`` finds a cluster from RAY_ADDRESS, from ``ray_current_cluster`` in Ray's temp dir,
    and from any raylet process on this machine. The first two are isolated here; the third cannot be, so this
    test comes first in the module, before its Ray starts, and is skipped where another Ray runs on the
    machine (another suite's, a cluster node's): "auto" would join it."""
    from papersys.embed.executors.raydata import import_ray

    ray = import_ray()
    from ray._private.services import find_gcs_addresses

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "ray"))
    if ray.is_initialized() or find_gcs_addresses():
        pytest.skip("a Ray runs on this machine: 'auto' would join it")
    config = make_store(tmp_path, "ray", "auto")
    before = tree(config.data_dir)
    with pytest.raises(ExecutorError) as caught:
        service.embed_autopatch(config)
    message = str(caught.value)
    assert message.startswith("cannot start or join 'auto': Could not find any running Ray instance"), message
    assert "\n" not in message and print_error(caught.value) == 1
    assert store_files(config.data_dir) == {k: v for k, v in before.items() if not k.startswith("state/")}
    assert not (config.data_dir / "embeddings").exists() and not ray.is_initialized()


@pytest.mark.slow
@pytest.mark.timeout(900)  # set-up included: 300 s with both cores busy elsewhere, three Ray pipelines
def test_ray_runs_cancelled_killed_then_finished_with_an_actor_killed_equal_a_local_run(
    local_ray: str, tmp_path: Path, reference: Layout, factory: EngineFactory
) -> None:
    """One store, three Ray runs (each loads MiniLM in two actors: start-up is most of this test's cost, so
    one store takes every fault in turn) of ``[embedding] executor = "ray"``, with a second model "loc" set to
    ``executor = "local"``:

    1. In this process, a cancel once the first block of vectors is back: Interrupted, and every vector that
       came back is written and valid; "loc", after it, is never reached.
    2. ``papersys embed autopatch`` in a child joining this module's Ray dies (os._exit(137), no clean-up: a
       SIGKILL as far as Ray is concerned) just after its first part is written; Ray reaps its actors.
    3. The mixed run: the same config in this process, with an actor process SIGKILLed once the first vectors
       are back (Ray Data restarts it, its block retried). "minilm" embeds exactly what is missing (nothing
       twice), "loc" everything; both stores equal the local run's (ids, text hashes, validity, cosine >=
       0.9999, manifest identity, coverage), no part is left pending. A rerun embeds nothing, opens nothing."""
    loc = {**MODEL, "alias": "loc", "executor": "local"}
    config = make_store(tmp_path, "ray", local_ray, models=(MODEL, loc))
    layout, models = Layout(config.data_dir), list(config.embedding.models)

    cancelling = CancelOnFirstBlock()
    with pytest.raises(Interrupted):
        patch(config, factory, cancelling.cancel_runtime())
    cancelled = assert_like_reference(layout, "minilm", reference, complete=False)
    assert 8 <= cancelled < 60  # at least the first block (8 rows)
    assert not store.stored_years(layout, "loc")

    child = run_cli_until_killed(config_file(tmp_path, config), tmp_path / "child.err")
    assert child == 137, (tmp_path / "child.err").read_text()
    killed = assert_like_reference(layout, "minilm", reference, complete=False)
    assert cancelled < killed < 60  # the child wrote a part, and died with papers left
    assert wait_for_no_actors(30.0) == [], "the killed driver's actors outlived it"

    progress = KillOnFirstBlock()
    runtime = Runtime(progress=progress)
    mixed = run_autopatch(layout, models, runtime, embedding=config.embedding, engine_factory=factory)
    assert {m.alias: m.embedded for m in mixed.models} == {"minilm": 60 - killed, "loc": 60}
    assert progress.killed and progress.advanced == 60 - killed + 60
    for alias in ("minilm", "loc"):
        assert assert_like_reference(layout, alias, reference) == 60
        assert store.pending_parts(layout, alias) == []
    manifest, theirs = store.read_manifest(layout, "minilm"), store.read_manifest(reference, "minilm")
    assert manifest is not None and theirs is not None and manifest.identity() == theirs.identity()
    assert coverage_by_year(layout, models[0], manifest) == coverage_by_year(reference, models[0], theirs)

    again = run_autopatch(layout, models, Runtime(), embedding=config.embedding, engine_factory=factory)
    assert again.embedded == 0 and all(m.load_seconds == 0 for m in again.models)  # no executor opened


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


def test_serves_embed_job_takes_the_executor_from_the_config(tmp_path: Path) -> None:
    """The daemon's scheduled job goes through service.embed_autopatch with the config's embedding section:
    a model with ``executor = "ray"`` reaches the Ray preflight (an address that does not answer: no Ray is
    started), while ``[embedding] executor`` stays "local"."""
    model = {**MODEL, "executor": "ray"}
    config = make_store(tmp_path, "local", f"127.0.0.1:{closed_port()}", models=(model,))
    with pytest.raises(ExecutorError, match="does not answer"):
        JOBS[EMBED](config, Runtime(trigger="schedule"))
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


class CancelOnFirstBlock(KillOnFirstBlock):
    """A progress task that cancels the run (as Ctrl-C or serve's stop does) when the first block is back."""

    def __init__(self) -> None:
        super().__init__()
        self.cancel = threading.Event()

    def cancel_runtime(self) -> Runtime:
        return Runtime(progress=self, cancel=self.cancel)

    def advance(self, amount: float = 1) -> None:
        self.advanced += int(amount)
        self.cancel.set()


def config_file(root: Path, config: Config) -> Path:
    """``config`` as the TOML file a CLI child reads (its data dir, embedding section and models)."""
    embedding = config.embedding
    lines = [
        f'data_dir = "{config.data_dir}"',
        "[embedding]",
        f'executor = "{embedding.executor}"',
        f'ray_address = "{embedding.ray_address}"',
    ]
    for model in embedding.models:
        lines += ["[[embedding.models]]", f'alias = "{model.alias}"', f'executor = "{model.executor}"']
        lines += [f"{key} = {getattr(model, key)}" for key in ("chunk_size", "batch_size", "ray_actors")]
    path = root / "papersys.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_cli_until_killed(config: Path, stderr: Path) -> int:
    """``papersys embed autopatch`` in a child that dies (os._exit(137)) just after writing its first part."""
    env = {k: v for k, v in os.environ.items() if k not in ("PAPERSYS_CONFIG", "RAY_ADDRESS")}
    env["PAPERSYS_CRASH_AT"] = "embed.part_written:1"
    with stderr.open("wb") as err:
        args = [sys.executable, "-m", "papersys", "--config", str(config), "embed", "autopatch"]
        return subprocess.run(args, cwd=REPO, env=env, stderr=err, stdout=subprocess.DEVNULL, timeout=480).returncode


def wait_for_no_actors(seconds: float) -> list[int]:
    """Actor processes (``ray::MapWorker``) of this module's Ray still alive after ``seconds``; those are
    killed, so that none outlives the test."""
    deadline = time.monotonic() + seconds
    while (left := our_actor_pids()) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left
