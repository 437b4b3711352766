"""Store locks: contention between real processes, the holder named in the error, release on death."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from papersys.errors import Interrupted, LockBusyError
from papersys.runtime import Runtime
from papersys.store import locks
from papersys.store.layout import Layout

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from papersys.store import locks
    from papersys.store.layout import Layout
    with locks.hold(Layout(Path(sys.argv[1])), sys.argv[2], timeout_s=5, command="papersys ingest (test holder)"):
        print("held", flush=True)
        time.sleep(float(sys.argv[3]))
    """
)


def _start_holder(data: Path, name: str, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(data), name, str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_writer_waits_then_fails_naming_the_holder(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    proc = _start_holder(tmp_path, locks.METADATA, 30)
    try:
        started = time.monotonic()
        with pytest.raises(LockBusyError) as info, locks.hold(layout, locks.METADATA, timeout_s=0.5):
            pass
        assert time.monotonic() - started >= 0.5
        message = str(info.value)
        assert f"pid {proc.pid}" in message
        assert "papersys ingest (test holder)" in message
        assert "since 20" in message
        assert info.value.exit_code == 3
    finally:
        proc.kill()
        proc.wait()


def test_a_killed_holder_releases_the_lock(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    proc = _start_holder(tmp_path, locks.METADATA, 30)
    proc.kill()
    proc.wait()
    with locks.hold(layout, locks.METADATA, timeout_s=2):
        info = locks.read_holder(layout, locks.METADATA)
        assert info is not None and info["pid"] != proc.pid
    assert locks.read_holder(layout, locks.METADATA) is None


def test_different_stores_do_not_block_each_other(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    proc = _start_holder(tmp_path, locks.METADATA, 30)
    try:
        with locks.hold(layout, locks.embeddings_lock("minilm"), timeout_s=0.2):
            assert locks.read_holder(layout, "embeddings-minilm") is not None
    finally:
        proc.kill()
        proc.wait()


def test_waiting_for_a_lock_wakes_up_on_cancel(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    proc = _start_holder(tmp_path, locks.METADATA, 30)
    runtime = Runtime()
    threading.Timer(0.3, runtime.cancel.set).start()
    try:
        started = time.monotonic()
        with pytest.raises(Interrupted), locks.hold(layout, locks.METADATA, timeout_s=30, runtime=runtime):
            pass
        assert time.monotonic() - started < 5
    finally:
        proc.kill()
        proc.wait()
