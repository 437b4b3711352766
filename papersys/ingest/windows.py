"""Pure planning of a harvest: where it starts (argument, watermark or initial_days) and its windows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

# arXiv's OAI-PMH server answers badArgument for an earlier `from` (earliestDatestamp of its Identify);
# every record carries a datestamp on or after it, so clamping loses nothing.
EARLIEST_DATESTAMP = date(2005, 9, 16)


@dataclass(frozen=True)
class StartPoint:
    start: date
    reason: str  # shown to the user: why the harvest starts there


def resolve_start(
    requested: date | None,
    watermark: date | None,
    today: date,
    *,
    overlap_days: int,
    initial_days: int,
    unfinished: date | None = None,
) -> StartPoint:
    """Where a harvest starts: ``--from``, else the earlier of the watermark minus the overlap and the start
    of a window a killed or failed run left ``unfinished`` (without it, a first run killed in its first
    window, or a killed backfill older than the watermark, would never be redone), else initial_days back."""
    behind = unfinished is not None and (watermark is None or unfinished < watermark - timedelta(days=overlap_days))
    if requested is None and unfinished is not None and behind:
        return StartPoint(unfinished, f"from {unfinished}, where the unfinished window of an earlier run began")
    if requested is not None:
        if requested < EARLIEST_DATESTAMP:
            return StartPoint(
                EARLIEST_DATESTAMP,
                f"from {EARLIEST_DATESTAMP} (--from {requested} is before arXiv's earliest datestamp)",
            )
        return StartPoint(requested, f"from {requested} (--from)")
    if watermark is not None:
        start = watermark - timedelta(days=overlap_days)
        return StartPoint(start, f"from watermark {watermark} minus {overlap_days} day(s) of overlap")
    start = max(today - timedelta(days=initial_days), EARLIEST_DATESTAMP)
    return StartPoint(
        start,
        f"no watermark yet: starting {initial_days} days back (ingest.initial_days); "
        "use --from or --snapshot for more history",
    )


def plan_windows(start: date, until: date, window_days: int) -> list[tuple[date, date]]:
    """Consecutive inclusive day ranges of at most ``window_days`` covering ``start..until``."""
    if start > until:
        return []
    windows = []
    lo = start
    step = timedelta(days=window_days)
    while lo <= until:
        hi = min(lo + step - timedelta(days=1), until)
        windows.append((lo, hi))
        lo = hi + timedelta(days=1)
    return windows
