"""map_ahead: order kept, one item computed ahead, errors surface at their item, early stop is clean."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from papersys.ingest.ahead import map_ahead


def test_results_come_in_order_and_run_in_a_worker_thread() -> None:
    threads: set[str] = set()

    def square(x: int) -> int:
        threads.add(threading.current_thread().name)
        return x * x

    assert list(map_ahead(iter(range(10)), square)) == [x * x for x in range(10)]
    assert threads and all(name.startswith("papersys-ahead") for name in threads)


def test_only_one_item_is_produced_ahead_of_the_consumer() -> None:
    produced: list[int] = []

    def source() -> Iterator[int]:
        for i in range(100):
            produced.append(i)
            yield i

    results = map_ahead(source(), lambda x: x)
    assert next(results) == 0
    assert next(results) == 1
    assert len(produced) <= 3  # the two consumed and at most one in flight
    results.close()


def test_an_error_surfaces_at_the_item_where_it_happened() -> None:
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise RuntimeError("page 3 failed")

    seen = []
    with pytest.raises(RuntimeError, match="page 3 failed"):
        for item in map_ahead(source(), lambda x: x):
            seen.append(item)
    assert seen == [1, 2]


def test_empty_input() -> None:
    assert list(map_ahead(iter([]), lambda x: x)) == []
