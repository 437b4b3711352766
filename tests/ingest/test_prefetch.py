"""pipeline: order kept, work done in worker threads, bounded read-ahead, errors surface at their item,
closing early stops the workers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from papersys.ingest.prefetch import pipeline


def test_results_come_in_order_from_worker_threads() -> None:
    producers: set[str] = set()
    transformers: set[str] = set()

    def source() -> Iterator[int]:
        for i in range(50):
            producers.add(threading.current_thread().name)
            yield i

    def square(x: int) -> int:
        transformers.add(threading.current_thread().name)
        return x * x

    assert list(pipeline(source(), square)) == [x * x for x in range(50)]
    assert producers == {"papersys-fetch"} and transformers == {"papersys-parse"}


def test_read_ahead_is_bounded_by_the_queue_depth() -> None:
    produced: list[int] = []

    def source() -> Iterator[int]:
        for i in range(1000):
            produced.append(i)
            yield i

    results = pipeline(source(), lambda x: x, depth=2)
    assert next(results) == 0
    time.sleep(0.3)  # let the workers run as far ahead as they may
    assert len(produced) <= 1 + 2 + 1 + 2 + 1  # consumed, queued raw, in transform, queued done, in source
    results.close()


@pytest.mark.parametrize("where", ["source", "transform"])
def test_an_error_surfaces_at_the_item_where_it_happened(where: str) -> None:
    def source() -> Iterator[int]:
        yield 1
        yield 2
        if where == "source":
            raise RuntimeError("page 3 failed")
        yield 3

    def transform(x: int) -> int:
        if where == "transform" and x == 3:
            raise RuntimeError("page 3 failed")
        return x

    seen = []
    with pytest.raises(RuntimeError, match="page 3 failed"):
        for item in pipeline(source(), transform):
            seen.append(item)
    assert seen == [1, 2]


def test_closing_early_stops_the_workers() -> None:
    def endless() -> Iterator[int]:
        i = 0
        while True:
            yield i
            i += 1

    results = pipeline(endless(), lambda x: x)
    assert [next(results) for _ in range(3)] == [0, 1, 2]
    results.close()
    deadline = time.monotonic() + 5
    while any(t.name in ("papersys-fetch", "papersys-parse") for t in threading.enumerate()):
        assert time.monotonic() < deadline, "worker threads still running"
        time.sleep(0.05)


def test_empty_input() -> None:
    assert list(pipeline(iter([]), lambda x: x)) == []
