"""autopatch's writer: finished chunks are written (parts, compaction, coverage records) by one background
thread, in the order they were handed over, while the engine embeds the next chunks.

At GPU speed the engine waits for nothing but its inputs: writing a chunk's part, compacting a finished
year (it reads and rewrites every vector of the year) and recording coverage would otherwise stall it, a
few seconds per 100 k papers. One thread keeps the order that the store's guarantees rest on (a year is
recorded after its last part, compacted after its parts). The tasks waiting hold at most ``budget`` rows
of vectors (one task is always let in): enough for a GPU to keep embedding through a year's compaction,
few enough that memory stays bounded (≈ 100 MB with their texts at 384 dims). After a task fails no later
task runs (a part after a failed one would leave a hole that the coverage record then hides), and the
failure is raised in the caller's thread at its next ``submit`` or at ``drain``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

BUFFER_ROWS = 32_768  # rows of vectors handed over and not yet written (a GPU's 4 s at 8 k papers/s)


class OrderedWriter:
    def __init__(self, name: str, budget: int = BUFFER_ROWS) -> None:
        self.pool = ThreadPoolExecutor(1, thread_name_prefix=f"write-{name}")
        self.waiting: deque[tuple[Future[None], int]] = deque()
        self.budget = budget
        self.held = 0  # rows of the tasks in ``waiting``
        self.failed = False

    def submit(self, task: Callable[..., None], *args: Any, rows: int = 0) -> None:
        """Queue ``task(*args)``, which holds ``rows`` rows of vectors, after every task queued before; waits
        while the tasks not yet done would hold more than ``budget`` rows with it."""
        while self.waiting and (self.waiting[0][0].done() or self.held + rows > self.budget):
            self._retire()  # re-raises a task's failure here
        self.waiting.append((self.pool.submit(self._run, task, args), rows))
        self.held += rows

    def _retire(self) -> None:
        future, rows = self.waiting.popleft()
        self.held -= rows
        future.result()

    def _run(self, task: Callable[..., None], args: tuple[Any, ...]) -> None:
        if self.failed:
            return  # a task before this one failed: its error is being raised
        try:
            task(*args)
        except BaseException:
            self.failed = True
            raise

    def drain(self) -> None:
        """Wait for every queued task; raises the first failure."""
        while self.waiting:
            self._retire()

    def close(self) -> None:
        """Drain (raising the first failure), then stop the thread."""
        try:
            self.drain()
        finally:
            self.pool.shutdown(wait=True)
