"""An engine in a child process from ``multiprocessing.get_context("spawn")``: texts in, float32 arrays out.

One long-lived worker per model per run. Every wait has a timeout and a liveness check; a crashed or hung
child becomes an ``EngineError`` carrying its exit status and the last lines of its log, and the parent
lives on. The child's stdout/stderr go to a log file; the pipe carries only the protocol:
``("embed", texts)`` → ``("ok", array)`` | ``("error", message)``; ``("close",)`` ends the child.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import time
import traceback
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from papersys.config import ModelConfig
from papersys.embed.engines.base import Vectors
from papersys.errors import EngineError

_POLL_S = 0.25  # liveness is checked this often while waiting for a reply
_TAIL_LINES = 6


class WorkerEngine:
    """Parent side: starts the child, sends batches, waits with timeouts, kills it when it hangs."""

    def __init__(self, model: ModelConfig, *, log_path: Path) -> None:
        self.model = model
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(f"papersys embedding worker for model {model.alias!r} ({model.backend})\n")
        ctx = multiprocessing.get_context("spawn")
        self._conn, child_conn = ctx.Pipe()
        # not a daemon: vLLM starts processes of its own, which daemonic processes may not
        self._proc = ctx.Process(
            target=child_main,
            args=(child_conn, model.model_dump(mode="json"), str(log_path)),
            name=f"papersys-embed-{model.alias}",
        )
        self._proc.start()
        child_conn.close()
        self._alive = True
        try:
            reply = self._wait(model.worker_start_timeout_s, "to load the model")
        except BaseException:
            self.close()
            raise
        if reply[0] != "ready":
            self.close()
            raise EngineError(model.alias, f"worker could not start: {reply[1]}")
        self._dim = int(reply[1])
        if self._dim != model.dim:
            self.close()
            raise EngineError(model.alias, f"model produces {self._dim}-dim vectors but dim = {model.dim}")

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not self._alive:
            raise EngineError(self.model.alias, "worker is not running")
        if not texts:
            return np.empty((0, self._dim), dtype=np.float32)
        try:
            self._conn.send(("embed", list(texts)))
        except (BrokenPipeError, ConnectionError, OSError) as exc:
            raise self._crashed(f"pipe closed ({exc})") from exc
        reply = self._wait(self.model.worker_timeout_s, f"for a batch of {len(texts)}")
        if reply[0] != "ok":
            raise EngineError(self.model.alias, f"worker failed on a batch: {reply[1]}")
        vectors: Vectors = reply[1]  # checked once, where vectors enter the store (autopatch)
        return vectors

    def close(self) -> None:
        """Ask the child to exit, then make sure it has (kill after a grace period)."""
        if self._proc.pid is None:
            return
        if self._alive and self._proc.is_alive():
            with contextlib.suppress(BrokenPipeError, ConnectionError, OSError):
                self._conn.send(("close",))
            self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)
        self._alive = False
        self._conn.close()

    # waiting ------------------------------------------------------------------------------------------
    def _wait(self, timeout_s: float, what: str) -> tuple[Any, ...]:
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._hung(timeout_s, what)
            if self._conn.poll(min(_POLL_S, remaining)):
                try:
                    reply: tuple[Any, ...] = self._conn.recv()
                except (EOFError, ConnectionError, OSError) as exc:
                    raise self._crashed("pipe closed") from exc
                return reply
            if not self._proc.is_alive() and not self._conn.poll(0):
                raise self._crashed("no reply")

    def _hung(self, timeout_s: float, what: str) -> EngineError:
        pid = self._proc.pid
        self._proc.kill()
        self._proc.join(5)
        self._alive = False
        detail = f"worker (pid {pid}) sent no reply within {timeout_s:g}s {what}; killed it"
        return EngineError(self.model.alias, detail + self._tail())

    def _crashed(self, why: str) -> EngineError:
        self._proc.join(5)
        self._alive = False
        code = self._proc.exitcode
        if code is not None and code < 0:
            status = f"was killed by signal {-code} ({signal.Signals(-code).name})"
        else:
            status = f"exited with status {code}"
        return EngineError(self.model.alias, f"worker (pid {self._proc.pid}) {status} ({why})" + self._tail())

    def _tail(self) -> str:
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(max(0, fh.seek(0, os.SEEK_END) - 8192))
                text = fh.read().decode("utf-8", "replace")
        except OSError:
            return ""
        lines = [line.strip() for line in text.splitlines() if line.strip()][-_TAIL_LINES:]
        return f"; last log lines ({self.log_path}): " + " | ".join(lines) if lines else ""


def child_main(conn: Connection, model_dump: dict[str, Any], log_path: str) -> None:
    """Child side: route stdout/stderr to the log, build the engine, serve batches until told to stop."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it closes us
    model = ModelConfig.model_validate(model_dump)
    try:
        from papersys.embed.engines import inline_engine

        engine = inline_engine(model)
    except BaseException as exc:
        traceback.print_exc()
        conn.send(("error", _describe(exc)))
        return
    conn.send(("ready", engine.dim))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):  # the parent went away
            break
        if request[0] == "close":
            break
        try:
            conn.send(("ok", engine.embed(request[1])))
        except Exception as exc:
            traceback.print_exc()
            conn.send(("error", _describe(exc)))
    engine.close()


def _describe(exc: BaseException) -> str:
    detail = exc.detail if isinstance(exc, EngineError) else str(exc)
    return f"{type(exc).__name__}: {detail}".strip()
