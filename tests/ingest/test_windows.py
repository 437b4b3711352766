"""Pure harvest planning: start point and windows."""

from __future__ import annotations

import itertools
from datetime import date

from papersys.ingest.windows import plan_windows, resolve_start

TODAY = date(2026, 11, 21)


def test_start_from_argument_watermark_or_initial_days() -> None:
    assert resolve_start(date(2024, 1, 1), date(2026, 1, 1), TODAY, overlap_days=1, initial_days=7).start == date(
        2024, 1, 1
    )
    wm = resolve_start(None, date(2026, 11, 20), TODAY, overlap_days=1, initial_days=7)
    assert wm.start == date(2026, 11, 19) and "watermark 2026-11-20" in wm.reason
    first = resolve_start(None, None, TODAY, overlap_days=1, initial_days=7)
    assert first.start == date(2026, 11, 14) and "initial_days" in first.reason


def test_windows_cover_the_range_exactly_once() -> None:
    windows = plan_windows(date(2024, 1, 1), date(2024, 3, 5), 30)
    assert windows[0] == (date(2024, 1, 1), date(2024, 1, 30))
    assert windows[-1][1] == date(2024, 3, 5)
    for (_, hi), (lo, _) in itertools.pairwise(windows):
        assert (lo - hi).days == 1
    assert plan_windows(date(2024, 1, 1), date(2024, 1, 1), 30) == [(date(2024, 1, 1), date(2024, 1, 1))]
    assert plan_windows(date(2024, 1, 2), date(2024, 1, 1), 30) == []


def test_start_is_never_before_arxivs_earliest_datestamp() -> None:
    old = resolve_start(date(1991, 8, 14), None, TODAY, overlap_days=1, initial_days=7)
    assert old.start == date(2005, 9, 16) and "earliest datestamp" in old.reason
    assert resolve_start(None, None, TODAY, overlap_days=1, initial_days=100_000).start == date(2005, 9, 16)
