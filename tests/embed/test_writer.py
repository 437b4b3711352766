"""autopatch's background writer: tasks run in order on one other thread, a failure stops every later task and
is raised in the caller's thread, and the tasks not yet done hold at most ``budget`` rows (the caller waits)."""

from __future__ import annotations

import threading

import pytest

from papersys.embed.writer import OrderedWriter


def test_tasks_run_in_order_on_one_other_thread() -> None:
    writer = OrderedWriter("t")
    seen: list[tuple[int, str]] = []
    for number in range(20):
        writer.submit(lambda n: seen.append((n, threading.current_thread().name)), number)
    writer.close()
    assert [n for n, _ in seen] == list(range(20))
    names = {name for _, name in seen}
    assert len(names) == 1 and names != {threading.current_thread().name}


def test_a_failed_task_stops_the_later_ones_and_is_raised_to_the_caller() -> None:
    writer = OrderedWriter("t")
    ran: list[int] = []
    release = threading.Event()

    def fail() -> None:
        release.wait(5)
        raise OSError(28, "No space left on device")

    writer.submit(ran.append, 1)
    writer.submit(fail)
    writer.submit(ran.append, 3)  # queued behind the failing task: must never run
    release.set()
    with pytest.raises(OSError, match="No space left"):
        writer.drain()
    writer.close()
    assert ran == [1]


def test_the_caller_waits_while_the_tasks_not_done_hold_the_budget() -> None:
    writer = OrderedWriter("t", budget=3)
    release = threading.Event()
    writer.submit(release.wait, 5, rows=1)  # running
    writer.submit(lambda: None, rows=2)  # waiting: the budget is held
    blocked = threading.Thread(target=writer.submit, args=(lambda: None,), kwargs={"rows": 1})
    blocked.start()
    blocked.join(0.3)
    assert blocked.is_alive(), "a task was queued past the budget"
    release.set()
    blocked.join(5)
    assert not blocked.is_alive()
    writer.close()
    assert not writer.waiting
