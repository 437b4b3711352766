"""autopatch's writer: finished chunks are written (parts, compaction, coverage records) by one background
thread, in the order they were handed over, while the engine embeds the next chunk.

At GPU speed the engine waits for nothing but its inputs: writing a chunk's part, compacting a finished
year (it reads and rewrites every vector of the year) and recording coverage would otherwise stall it, a
few seconds per 100 k papers. One thread keeps the order that the store's guarantees rest on (a year is
recorded after its last part, compacted after its parts); at most ``depth`` tasks wait, so memory stays
bounded by a few chunks of vectors. After a task fails no later task runs (a part after a failed one would
leave a hole that the coverage record then hides), and the failure is raised in the caller's thread at its
next ``submit`` or at ``drain``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

DEPTH = 2  # tasks waiting besides the one running: two chunks' vectors at most


class OrderedWriter:
    def __init__(self, name: str, depth: int = DEPTH) -> None:
        self.pool = ThreadPoolExecutor(1, thread_name_prefix=f"write-{name}")
        self.waiting: deque[Future[None]] = deque()
        self.depth = depth
        self.failed = False

    def submit(self, task: Callable[..., None], *args: Any) -> None:
        """Queue ``task(*args)`` after every task queued before; waits while ``depth`` tasks are waiting."""
        while self.waiting and (self.waiting[0].done() or len(self.waiting) > self.depth):
            self.waiting.popleft().result()  # re-raises a task's failure here
        self.waiting.append(self.pool.submit(self._run, task, args))

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
            self.waiting.popleft().result()

    def close(self) -> None:
        """Drain (raising the first failure), then stop the thread."""
        try:
            self.drain()
        finally:
            self.pool.shutdown(wait=True)
