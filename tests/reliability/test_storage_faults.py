"""Storage faults on real file systems: the data dir lives on a size-limited tmpfs that fills up for real
mid-run (``PAPERSYS_FILL_AT``: at a fault point the process itself writes a filler file until the kernel says
ENOSPC), is remounted read-only mid-run (``PAPERSYS_PAUSE_AT`` holds the run while the test remounts), or
is removed under a running daemon. Nothing is patched: the errors come from the kernel through polars,
pyarrow, tantivy or plain ``os`` calls.

Each faulted run must end with exit 4 and exactly one ``error:`` line naming the file, the cause in words and
what to do, and no traceback; afterwards every file opens, every store file is its old or its new version,
no temp file is left, the harvest checkpoint has not moved; once the fault is cleared a rerun ends equal to
an uninterrupted run."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from support.oai_server import OAIServer
from support.papers import synthetic_papers
from support.snapshots import bulk_snapshot

from papersys import service
from papersys.config import load_config
from papersys.store.layout import Layout
from papersys.store.state import load_state

from .conftest import (
    REPO,
    SmallFs,
    assert_storage_failure,
    assert_store_sound,
    child_env,
    cli,
    run_cli,
    temp_files,
)

PAPERS = synthetic_papers(300, seed=17, start=date(2024, 1, 1), days=20, deleted_fraction=0.03)
BASE_UNTIL, UNTIL = date(2024, 1, 10), date(2024, 1, 20)
EngineFactory = Callable[..., object]
ROOMY = "[store]\nfree_space_margin_mb = 0\n"  # the faults, not the pre-flight, are under test here


def write_config(root: Path, url: str, extra: str = ROOMY) -> Path:
    path = root / "papersys.toml"
    path.write_text(
        f'data_dir = "data"\n{extra}[ingest]\nbase_url = "{url}"\nrequest_interval_s = 0.0\nwindow_days = 30\n'
        "backoff_base_s = 0.1\nmax_retries = 2\ntimeout_s = 30.0\n[search]\ntext_index = false\n"
    )
    return path


def store_files(data: Path) -> dict[str, pl.DataFrame]:
    """Every store Parquet file (metadata, tombstones, embeddings), read: a torn one raises here."""
    files = sorted(data.glob("metadata/*.parquet")) + sorted(data.glob("embeddings/**/*.parquet"))
    return {str(p.relative_to(data)): pl.read_parquet(p) for p in files if not p.name.startswith(".")}


def assert_old_or_new(after: dict[str, pl.DataFrame], old: dict[str, pl.DataFrame], new: dict[str, pl.DataFrame]):
    for name, frame in after.items():
        versions = [v for v in (old.get(name), new.get(name)) if v is not None]
        assert any(frame.equals(v) for v in versions), f"{name} is neither its old nor its new version"


def assert_equal_stores(a: Path, b: Path) -> None:
    left, right = store_files(a), store_files(b)
    assert sorted(left) == sorted(right)
    for name in left:  # vectors within float noise; when they were embedded differs, of course
        a, b = (f.drop("embedded_at", strict=False) for f in (left[name], right[name]))
        assert_frame_equal(a, b, check_exact=False, abs_tol=2e-5)


@pytest.fixture(scope="module")
def server() -> object:
    with OAIServer(PAPERS, page_size=50) as srv:
        srv.warm()
        yield srv


@pytest.fixture(scope="module")
def stores(server: OAIServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``base``: the store after a first harvest; ``reference``: base plus the uninterrupted second harvest
    (in this process, on the roomy disk and with the default pre-flight margin: never refused there)."""
    out = {}
    for name, until in (("base", BASE_UNTIL), ("reference", UNTIL)):
        root = tmp_path_factory.mktemp(name)
        config = load_config(write_config(root, server.url, extra=""))
        service.ingest(config, start=date(2024, 1, 1), until=BASE_UNTIL)
        if until != BASE_UNTIL:
            report = service.ingest(config, until=until)
            assert report.records > 100 and len(report.years) >= 3  # several year files change
        out[name] = config.data_dir
    return out


def faulted_copy(fs: SmallFs, base: Path, url: str, size: str = "16m") -> tuple[Path, Path]:
    """A tmpfs of ``size`` holding a copy of ``base`` and its config; returns (mount point, config)."""
    point = fs.mount(size)
    shutil.copytree(base, point / "data")
    return point, write_config(point, url)


def assert_after_fault(data: Path, stores: dict[str, Path], *, writable: bool = True) -> None:
    assert_store_sound(data)
    assert_old_or_new(store_files(data), store_files(stores["base"]), store_files(stores["reference"]))
    assert temp_files(data) == []
    if writable:  # a full disk gets its space back; on a read-only one the rerun clears the spool
        assert not any(Layout(data).state_dir.glob("spool/**/*.parquet")), "the failed window's spool was kept"
    # the checkpoint has not moved past what was committed
    assert load_state(Layout(data)).watermark("all") == load_state(Layout(stores["base"])).watermark("all")


@pytest.mark.parametrize(
    ("point", "step"),
    [
        ("harvest.page:2", "spool"),  # the disk fills while pages are fetched: the spool part cannot be written
        ("metadata.year_written:2", "merge"),  # two years merged, the third cannot be written
        ("harvest.before_checkpoint:1", "checkpoint"),  # all merged, spool cleared: harvest.json cannot be saved
    ],
)
def test_a_full_disk_during_ingest(
    point: str, step: str, server: OAIServer, stores: dict[str, Path], small_fs: SmallFs
) -> None:
    mnt, config = faulted_copy(small_fs, stores["base"], server.url)
    data, filler = mnt / "data", mnt / "filler"
    proc = run_cli(
        "--config", config, "ingest", "--until", UNTIL.isoformat(), env={"PAPERSYS_FILL_AT": f"{point}:{filler}"}
    )
    line = assert_storage_failure(proc, "the disk is full", f"free space on {mnt}")
    assert str(data) in line, line
    assert_after_fault(data, stores)
    filler.unlink()  # space freed: the rerun (no --from, as the daemon runs it) redoes the window
    rerun = run_cli("--config", config, "ingest", "--until", UNTIL.isoformat())
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert_equal_stores(data, stores["reference"])
    assert temp_files(data) == []


def test_a_read_only_remount_mid_merge_then_status_still_answers(
    server: OAIServer, stores: dict[str, Path], small_fs: SmallFs, tmp_path: Path
) -> None:
    mnt, config = faulted_copy(small_fs, stores["base"], server.url)
    data, flag = mnt / "data", tmp_path / "pause"
    # the kernel refuses a read-only remount while a file is open for writing on it, and the run holds its
    # lock file open: the locks get a file system of their own (a real fault remounts regardless)
    small_fs.mount("1m", at=data / ".locks")
    args = cli("--config", config, "ingest", "--until", UNTIL.isoformat())
    env = child_env({"PAPERSYS_PAUSE_AT": f"metadata.year_written:1:{flag}"})
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not Path(f"{flag}.reached").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the run never reached the merge"
            time.sleep(0.01)
        small_fs.remount(mnt, "ro")  # one year merged, the others still to write
        Path(f"{flag}.go").touch()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    done = subprocess.CompletedProcess(args, proc.returncode, out, err)
    assert_storage_failure(done, "the file system is read-only", f"remount {mnt} read-write")
    assert "could not record job ingest" in err  # jobs.jsonl is on the read-only file system too
    assert_after_fault(data, stores, writable=False)
    status = run_cli("--config", config, "status")  # reads only: answers on a read-only store
    assert status.returncode == 0 and "error:" not in status.stderr, status.stderr[-2000:]
    again = run_cli("--config", config, "ingest", "--until", UNTIL.isoformat())  # refused before any write
    assert_storage_failure(again, "the file system is read-only")
    small_fs.remount(mnt, "rw")
    rerun = run_cli("--config", config, "ingest", "--until", UNTIL.isoformat())
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert_equal_stores(data, stores["reference"])


def test_the_pre_flight_refuses_a_write_that_cannot_fit(
    server: OAIServer, stores: dict[str, Path], small_fs: SmallFs
) -> None:
    """The default 64 MiB margin on a 16 MiB file system: refused at once, before any request or write."""
    mnt, config = faulted_copy(small_fs, stores["base"], server.url)
    write_config(mnt, server.url, extra="")
    before = {p: p.stat().st_mtime_ns for p in (mnt / "data").rglob("*") if p.is_file()}
    requests = server.request_count
    proc = run_cli("--config", config, "ingest", "--until", UNTIL.isoformat())
    assert_storage_failure(proc, "not enough free space", "free_space_margin_mb")
    assert server.request_count == requests
    after = {p: p.stat().st_mtime_ns for p in (mnt / "data").rglob("*") if p.is_file()}
    assert {p for p in after if after[p] != before.get(p)} <= {mnt / "data/state/jobs.jsonl"} | {
        p for p in after if ".locks" in p.parts
    }


def test_a_full_disk_during_a_snapshot_load(small_fs: SmallFs, tmp_path: Path) -> None:
    snapshot = tmp_path / "snapshot.json"
    bulk_snapshot(snapshot, 380)  # 19 years, chunks of 50 lines: 8 chunks
    extra = "[store]\nfree_space_margin_mb = 0\n"
    tail = "[ingest]\nsnapshot_chunk_lines = 50\n[search]\ntext_index = false\n"
    reference = tmp_path / "reference"
    reference.mkdir()
    (reference / "papersys.toml").write_text(f'data_dir = "data"\n{tail}')
    service.ingest_snapshot(load_config(reference / "papersys.toml"), snapshot)
    mnt = small_fs.mount("16m")
    config = mnt / "papersys.toml"
    config.write_text(f'data_dir = "data"\n{extra}{tail}')
    filler = mnt / "filler"
    proc = run_cli(
        "--config", config, "ingest", "--snapshot", snapshot, env={"PAPERSYS_FILL_AT": f"snapshot.spooled:3:{filler}"}
    )
    assert_storage_failure(proc, "the disk is full")
    assert_store_sound(mnt / "data")
    assert temp_files(mnt / "data") == []
    assert not list((mnt / "data/metadata").glob("*.parquet")), "nothing is merged before the whole file is read"
    filler.unlink()
    rerun = run_cli("--config", config, "ingest", "--snapshot", snapshot)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "resumed an interrupted load after line 100" in rerun.stdout  # after the last committed chunk
    assert_equal_stores(mnt / "data", reference / "data")


def test_a_data_dir_removed_under_the_daemon(
    server: OAIServer, stores: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The job fails (logged in one line, counted), nothing recreates the data dir, the daemon lives on and
    ``status`` answers; once the dir is back the next run of the job succeeds."""
    from papersys.daemon.metrics import Metrics
    from papersys.daemon.scheduler import INGEST, Daemon

    data = tmp_path / "data"
    shutil.copytree(stores["base"], data)
    config_file = write_config(tmp_path, server.url)
    config_file.write_text(config_file.read_text() + "[metrics]\nport = 0\n[api]\nenabled = false\n")
    config = load_config(config_file)
    metrics = Metrics()
    daemon = Daemon(config, metrics=metrics)
    thread = threading.Thread(target=daemon.serve, kwargs={"install_signals": False}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not Layout(data).daemon_state.exists():
            assert time.monotonic() < deadline and thread.is_alive(), "the daemon did not start"
            time.sleep(0.01)
        shutil.rmtree(data)
        assert daemon.run_guarded(INGEST) == "error"
        assert not data.exists(), "a job recreated the removed data dir"
        failed = [r.getMessage() for r in caplog.records if "job ingest failed" in r.getMessage()]
        assert len(failed) == 1 and "the data dir no longer exists" in failed[0] and "\n" not in failed[0]
        assert not (data / "state" / "jobs.jsonl").exists()  # nowhere to record it: the log line is the record
        assert metrics.job_runs_total.labels(job=INGEST, outcome="error")._value.get() == 1
        assert thread.is_alive()
        report = service.status(config)  # answers, and writes nothing
        assert report is not None and not data.exists()
        shutil.copytree(stores["base"], data)  # restored: the next scheduled run of the job succeeds
        assert daemon.run_guarded(INGEST) == "ok"
        assert metrics.job_runs_total.labels(job=INGEST, outcome="ok")._value.get() == 1
        assert_equal_stores(data, stores["reference"])
    finally:
        daemon.stop()
        thread.join(30)
    assert not thread.is_alive()


AUTOPATCH_PAPERS = synthetic_papers(40, seed=5, start=date(2024, 1, 1), days=20)


def _autopatch_config(root: Path) -> Path:
    path = root / "papersys.toml"
    path.write_text(
        f'data_dir = "data"\n{ROOMY}[[embedding.models]]\nalias = "minilm"\nchunk_size = 8\nbatch_size = 8\n'
        "max_length = 128\n[search]\ntext_index = false\n"
    )
    return path


def _metadata(root: Path) -> Layout:
    from support.expected import expected_row

    from papersys.store.metadata import conform, upsert

    layout = Layout(root / "data")
    upsert(layout, conform(pl.DataFrame([expected_row(p) for p in AUTOPATCH_PAPERS])))
    return layout


def test_a_full_disk_during_autopatch_parts_then_compaction(
    factory: EngineFactory, small_fs: SmallFs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In process with the session's MiniLM (loaded once): the disk fills after the second part file, then,
    on the rerun, right before the first compaction. Each time: one StorageError line (exit 4), every file
    readable, no temp file, every stored vector the uninterrupted run's; the last rerun equals it."""
    from papersys import faults
    from papersys.cli.console import print_error
    from papersys.embed.autopatch import run_autopatch
    from papersys.errors import StorageError
    from papersys.runtime import Runtime

    reference = tmp_path / "reference"
    reference.mkdir()
    ref_config = load_config(_autopatch_config(reference))
    _metadata(reference)
    run_autopatch(Layout(ref_config.data_dir), list(ref_config.embedding.models), Runtime(), engine_factory=factory)
    expected = _vectors(ref_config.data_dir)

    mnt = small_fs.mount("16m")
    config = load_config(_autopatch_config(mnt))
    _metadata(mnt)
    filler = mnt / "filler"
    for point, what in (("embed.part_written:2", "parts"), ("embed.compacting:1", "compaction")):
        faults._hits.clear()
        monkeypatch.setenv(faults.FILL_ENV, f"{point}:{filler}")
        with pytest.raises(StorageError) as caught:
            service.embed_autopatch(config, engine_factory=factory)
        monkeypatch.delenv(faults.FILL_ENV)
        message = str(caught.value)
        assert "the disk is full" in message and f"free space on {mnt}" in message and "\n" not in message, what
        assert print_error(caught.value) == 4
        assert_store_sound(config.data_dir)
        assert temp_files(config.data_dir) == []
        stored = _vectors(config.data_dir)
        assert stored, what  # the parts written before the fault are kept
        for paper_id, vector in stored.items():
            assert np.allclose(vector, expected[paper_id], atol=2e-5), (what, paper_id)
        filler.unlink()
        if what == "parts":
            parts = sorted(config.data_dir.glob("embeddings/minilm/**/*.parquet"))
            assert parts and not list(config.data_dir.glob("embeddings/minilm/[0-9]*.parquet")), parts
    run_autopatch(Layout(config.data_dir), list(config.embedding.models), Runtime(), engine_factory=factory)
    assert_equal_stores(config.data_dir, ref_config.data_dir)
    assert temp_files(config.data_dir) == []


def _vectors(data: Path) -> dict[str, np.ndarray]:
    """Every stored vector by paper id (year files, then parts: the latest wins, as readers see it)."""
    out: dict[str, np.ndarray] = {}
    root = data / "embeddings" / "minilm"
    files = sorted(root.glob("[0-9]*.parquet")) + sorted(p for p in root.rglob("*.parquet") if p.parent != root)
    for path in files:
        for paper_id, vector in pl.read_parquet(path, columns=["id", "vector"]).iter_rows():
            out[paper_id] = np.asarray(vector, dtype=np.float32)
    return out


@pytest.mark.parametrize("point", ["metadata.year_written:1", "atomic.before_replace:8"])
def test_a_full_disk_during_the_migration(
    point: str, small_fs: SmallFs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In process (the migration's own tests drive it so): the disk fills after the first metadata year file,
    or at a later write of metadata or vectors; the rerun once space is freed equals an uninterrupted run."""
    from support.legacy import build_fixture, migrate

    from papersys import faults
    from papersys.cli.console import print_error
    from papersys.config import Config, StoreConfig
    from papersys.errors import StorageError

    legacy = tmp_path / "legacy"
    build_fixture(legacy)
    reference = Config(data_dir=tmp_path / "reference")
    migrate(reference, legacy)
    mnt = small_fs.mount("16m")
    config = Config(data_dir=mnt / "data", store=StoreConfig(free_space_margin_mb=0))
    faults._hits.clear()
    monkeypatch.setenv(faults.FILL_ENV, f"{point}:{mnt / 'filler'}")
    with pytest.raises(StorageError) as caught:
        migrate(config, legacy)
    monkeypatch.delenv(faults.FILL_ENV)
    assert "the disk is full" in str(caught.value) and "\n" not in str(caught.value)
    assert print_error(caught.value) == 4
    assert_store_sound(config.data_dir)
    assert temp_files(config.data_dir) == []
    assert_old_or_new(store_files(config.data_dir), {}, store_files(reference.data_dir))
    (mnt / "filler").unlink()
    migrate(config, legacy)
    assert_equal_stores(config.data_dir, reference.data_dir)


def test_a_full_disk_while_the_full_text_index_commits(
    stores: dict[str, Path], small_fs: SmallFs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tantivy's commit meets a full disk: a StorageError line, no half-built generation left behind (its
    space is given back), no manifest; the rebuild once space is freed indexes every paper."""
    from papersys import faults
    from papersys.errors import StorageError

    mnt = small_fs.mount("16m")
    shutil.copytree(stores["reference"], mnt / "data")
    config = load_config(write_config(mnt, "http://127.0.0.1:9/unused"))
    layout = Layout(config.data_dir)
    faults._hits.clear()
    monkeypatch.setenv(faults.FILL_ENV, f"text-index.before-commit:1:{mnt / 'filler'}")
    with pytest.raises(StorageError) as caught:
        service.index(config, text_only=True)
    monkeypatch.delenv(faults.FILL_ENV)
    assert "the disk is full" in str(caught.value) and str(layout.text_index_dir) in str(caught.value)
    assert not layout.text_index_manifest.exists()
    assert [p.name for p in layout.text_index_dir.iterdir()] == []  # the failed generation is gone
    (mnt / "filler").unlink()
    report = service.index(config, text_only=True)
    papers = sum(frame.height for name, frame in store_files(config.data_dir).items() if name.startswith("metadata"))
    assert report.text is not None and report.text.count == papers
