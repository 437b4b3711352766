"""A two-stage pipeline in worker threads: one thread produces items (fetch + parse a page), another
transforms them (flatten + build frames) while the caller consumes earlier results (spool, merge).

Network waits, libxml2 parsing, libxslt and polars release the GIL, so the stages use both cores. Items
are still produced strictly one after another (the OAI client's spacing and retries are unchanged), and
each queue holds at most ``depth`` items, which bounds memory.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
U = TypeVar("U")


class _End:
    pass


@dataclass(frozen=True)
class _Failed:
    error: BaseException


@dataclass
class _Stage(Generic[T]):
    out: queue.Queue[T | _End | _Failed]
    stop: threading.Event

    def put(self, item: T | _End | _Failed) -> bool:
        """Hand ``item`` on, waiting while the queue is full; False once the consumer has gone."""
        while not self.stop.is_set():
            try:
                self.out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False


def _produce(items: Iterator[T], stage: _Stage[T]) -> None:
    try:
        for item in items:
            if not stage.put(item):
                return
        stage.put(_End())
    except BaseException as exc:  # handed to the consumer, raised there
        stage.put(_Failed(exc))


def _transform(source: queue.Queue[T | _End | _Failed], fn: Callable[[T], U], stage: _Stage[U]) -> None:
    while not stage.stop.is_set():
        try:
            item = source.get(timeout=0.1)
        except queue.Empty:
            continue
        if isinstance(item, _End | _Failed):
            stage.put(item)
            return
        try:
            result = fn(item)
        except BaseException as exc:
            stage.put(_Failed(exc))
            return
        if not stage.put(result):
            return


def pipeline(items: Iterator[T], transform: Callable[[T], U], *, depth: int = 3) -> Iterator[U]:
    """``transform(item)`` for each item, in order, computed ahead in two worker threads. An exception in
    either stage surfaces at the item where it happened; closing the iterator stops both threads."""
    stop = threading.Event()
    raw: _Stage[T] = _Stage(queue.Queue(maxsize=depth), stop)
    done: _Stage[U] = _Stage(queue.Queue(maxsize=depth), stop)
    threads = [
        threading.Thread(target=_produce, args=(items, raw), name="papersys-fetch", daemon=True),
        threading.Thread(target=_transform, args=(raw.out, transform, done), name="papersys-parse", daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        while True:
            result = done.out.get()
            if isinstance(result, _End):
                return
            if isinstance(result, _Failed):
                raise result.error
            yield result
    finally:
        stop.set()
