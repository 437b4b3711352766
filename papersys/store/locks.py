"""Store locks (filelock): one for metadata writes, one per model for embedding writes, one for the daemon.

The OS releases a lock when its holder dies, so a killed process never leaves a store locked. Beside each
lock a small JSON file names the holder (pid, command, since) for the error the next writer sees.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from filelock import FileLock, Timeout

from papersys.errors import Interrupted, LockBusyError
from papersys.runtime import Runtime, utc_stamp
from papersys.store.atomic import read_json, write_json
from papersys.store.layout import Layout
from papersys.store.storage import check_not_vanished, storage_guard

METADATA = "metadata"
DAEMON = "daemon"


def embeddings_lock(alias: str) -> str:
    return f"embeddings-{alias}"


def describe_holder(info: Any) -> str:
    if not isinstance(info, dict):
        return "another papersys process"
    return f"pid {info.get('pid', '?')} ({info.get('command', '?')}) since {info.get('since', '?')}"


def read_holder(layout: Layout, name: str) -> dict[str, Any] | None:
    try:
        info = read_json(layout.lock_info_file(name))
    except Exception:  # a half-written holder file only weakens the message, never the lock
        return None
    return info if isinstance(info, dict) else None


@contextmanager
def hold(
    layout: Layout, name: str, *, timeout_s: float, runtime: Runtime | None = None, command: str | None = None
) -> Iterator[None]:
    """Hold lock ``name`` for the block; wait up to ``timeout_s`` (waking on cancel), else LockBusyError."""
    lock = FileLock(layout.lock_file(name), thread_local=False)
    cancel = runtime.cancel.is_set if runtime is not None else None
    started = time.monotonic()
    check_not_vanished(layout.lock_file(name))
    try:
        with storage_guard(layout.lock_file(name), "create the lock"):
            layout.locks_dir.mkdir(parents=True, exist_ok=True)
            lock.acquire(timeout=timeout_s, poll_interval=0.1, cancel_check=cancel)
    except Timeout:
        if runtime is not None and runtime.cancel.is_set():
            raise Interrupted(f"stopped while waiting for lock {name!r}") from None
        raise LockBusyError(name, describe_holder(read_holder(layout, name)), time.monotonic() - started) from None
    try:
        write_json(
            {
                "pid": os.getpid(),
                "command": command or " ".join(["papersys", *sys.argv[1:]]),
                "since": utc_stamp(),
            },
            layout.lock_info_file(name),
        )
        yield
    finally:
        # a read-only or vanished lock directory must not hide the job's own outcome
        with contextlib.suppress(OSError):
            layout.lock_info_file(name).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            lock.release()


@contextmanager
def hold_all(
    layout: Layout, names: list[str], *, timeout_s: float, runtime: Runtime | None = None, command: str | None = None
) -> Iterator[None]:
    """Hold several locks, always taken in sorted order so that two processes cannot deadlock."""
    with ExitStack() as stack:
        for name in sorted(set(names)):
            stack.enter_context(hold(layout, name, timeout_s=timeout_s, runtime=runtime, command=command))
        yield
