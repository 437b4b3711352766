"""SIGKILL a real ``python -m papersys ingest --snapshot`` partway; the rerun must give the uninterrupted store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal
from support.snapshots import bulk_snapshot

from papersys.config import load_config
from papersys.ingest.snapshot.load import load_snapshot
from papersys.runtime import Runtime
from papersys.store.layout import Layout
from papersys.store.metadata import scan_all
from papersys.store.state import load_state

REPO = Path(__file__).resolve().parents[2]
LINES = 30_000


def _cli(config: Path, snapshot: Path, **extra_env: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "PAPERSYS_CONFIG"} | extra_env
    cmd = [sys.executable, "-m", "papersys", "--config", str(config), "ingest", "--snapshot", str(snapshot)]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _kill_when(proc: subprocess.Popen[bytes], checkpoint: Path, ready: str) -> dict[str, object] | None:
    """SIGKILL ``proc`` as soon as its checkpoint shows ``ready``; None when it finished first."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None
        try:
            saved = json.loads(checkpoint.read_text())
        except (FileNotFoundError, json.JSONDecodeError):  # not written yet (writes are atomic renames)
            saved = None
        if saved and (
            (ready == "spooling" and saved["phase"] == "spool" and saved["line_no"] > 0)
            or (ready == "merging" and saved["phase"] == "merge" and saved["merged"])
        ):
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return dict(saved)
        time.sleep(0.002)
    proc.kill()
    raise AssertionError("the load neither reached the kill point nor finished")


@pytest.mark.slow
def test_sigkill_while_spooling_and_while_merging_then_rerun(tmp_path: Path) -> None:
    snapshot = tmp_path / "snapshot.json"
    bulk_snapshot(snapshot, LINES)
    config_file = tmp_path / "papersys.toml"
    config_file.write_text('data_dir = "data"\n[ingest]\nsnapshot_chunk_lines = 300\n')
    config = load_config(config_file)
    expected = Layout(tmp_path / "expected")
    load_snapshot(config.ingest, expected, snapshot, runtime=Runtime())
    layout = Layout(config.data_dir)

    killed = _kill_when(_cli(config_file, snapshot), layout.snapshot_checkpoint, "spooling")
    assert killed is not None, "the load finished before it could be killed"
    assert 0 < int(killed["line_no"]) < LINES  # type: ignore[call-overload]
    assert not layout.metadata_years()  # nothing merged while spooling

    killed = _kill_when(_cli(config_file, snapshot), layout.snapshot_checkpoint, "merging")
    if killed is not None:  # on a fast machine the rerun may finish before the merge is caught
        assert layout.metadata_years()

    proc = _cli(config_file, snapshot)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    got, want = scan_all(layout).collect().sort("id"), scan_all(expected).collect().sort("id")
    assert got.height == LINES
    assert_frame_equal(got, want)
    assert not layout.snapshot_checkpoint.exists() and not layout.snapshot_spool_dir.exists()
    assert load_state(layout).watermark("all") == load_state(expected).watermark("all")


@pytest.mark.slow
@pytest.mark.parametrize(
    "crash_at",
    [
        "snapshot.spooled:3",  # a chunk's parts are written but not committed
        "snapshot.committed:2",  # between chunks
        "metadata.year_written:4",  # a year file is merged but not yet recorded in the checkpoint
        "snapshot.watermark_set:1",  # all merged, watermark saved, checkpoint still there
        "snapshot.checkpoint_cleared:1",  # checkpoint gone, spool still there
    ],
)
def test_crash_at_each_commit_point_then_rerun(tmp_path: Path, crash_at: str) -> None:
    snapshot = tmp_path / "snapshot.json"
    bulk_snapshot(snapshot, 3000)
    config_file = tmp_path / "papersys.toml"
    config_file.write_text('data_dir = "data"\n[ingest]\nsnapshot_chunk_lines = 250\n')
    config = load_config(config_file)
    expected = Layout(tmp_path / "expected")
    load_snapshot(config.ingest, expected, snapshot, runtime=Runtime())

    proc = _cli(config_file, snapshot, PAPERSYS_CRASH_AT=crash_at)
    proc.communicate(timeout=120)
    assert proc.returncode == 137  # died at the injected point, like a SIGKILL
    layout = Layout(config.data_dir)
    report = load_snapshot(config.ingest, layout, snapshot, runtime=Runtime())

    assert_frame_equal(scan_all(layout).collect().sort("id"), scan_all(expected).collect().sort("id"))
    assert report.lines == 3000 and report.records == 3000
    # the checkpoint survives every point but the last, and the rerun continues from it
    assert (report.resumed_from_line is not None) == (crash_at != "snapshot.checkpoint_cleared:1")
    assert not layout.snapshot_checkpoint.exists() and not layout.snapshot_spool_dir.exists()
    assert load_state(layout).watermark("all") == load_state(expected).watermark("all")
