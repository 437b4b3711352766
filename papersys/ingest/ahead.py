"""Work one item ahead in a worker thread: while the caller handles item n, item n+1 is fetched and
transformed (network waits, libxml2 parsing, libxslt and polars release the GIL, so this uses the 2nd core)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
U = TypeVar("U")
_END = object()


def map_ahead(items: Iterator[T], transform: Callable[[T], U]) -> Iterator[U]:
    """``transform(item)`` for each item, in order, computed one item ahead. Items are still produced
    strictly one after another (the OAI client's spacing and retries are unchanged); an exception in the
    worker surfaces at the item where it happened."""

    def step() -> U | object:
        item = next(items, _END)
        return _END if item is _END else transform(item)  # type: ignore[arg-type]

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="papersys-ahead")
    try:
        future = pool.submit(step)
        while True:
            result = future.result()
            if result is _END:
                return
            future = pool.submit(step)
            yield result  # type: ignore[misc]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
