"""Cron expressions mean what cron means (APScheduler 3 numbers weekdays from Monday = 0)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from papersys.daemon.cron import cron_days, cron_trigger


def _next(expr: str, after: datetime) -> datetime:
    fire: datetime = cron_trigger(expr, "UTC").get_next_fire_time(None, after)
    return fire


def test_numeric_weekdays_follow_cron() -> None:
    saturday = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    assert _next("0 3 * * 1", saturday).strftime("%a %H:%M") == "Mon 03:00"
    assert _next("0 3 * * 0", saturday).strftime("%a") == "Sun"
    assert _next("0 3 * * 7", saturday).strftime("%a") == "Sun"
    assert _next("0 3 * * 1-5", saturday).strftime("%a") == "Mon"


@pytest.mark.parametrize(
    ("field", "days"),
    [
        ("*", [0, 1, 2, 3, 4, 5, 6]),
        ("1-5", [1, 2, 3, 4, 5]),
        ("0,6", [0, 6]),
        ("5-7", [0, 5, 6]),
        ("*/2", [0, 2, 4, 6]),
        ("mon,WED", [1, 3]),
    ],
)
def test_cron_days(field: str, days: list[int]) -> None:
    assert cron_days(field) == days


@pytest.mark.parametrize("expr", ["* * * *", "61 * * * *", "0 3 * * 8", "0 3 * * 5-1", "0 25 * * *"])
def test_bad_expressions_raise_value_error(expr: str) -> None:
    with pytest.raises(ValueError):
        cron_trigger(expr, "UTC")


def test_time_zone_is_applied() -> None:
    fire = cron_trigger("0 3 * * *", "Europe/Berlin").get_next_fire_time(None, datetime(2026, 11, 21, tzinfo=UTC))
    assert fire.astimezone(UTC).hour == 2  # 03:00 CET


def test_day_of_month_and_weekday_together_fire_on_either_like_cron() -> None:
    saturday = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    trigger = cron_trigger("0 3 1 * 1", "UTC")  # the 1st of each month, and every Monday
    fires, after = [], saturday
    for _ in range(3):
        after = trigger.get_next_fire_time(None, after)
        fires.append(after.strftime("%a %d"))
        after = after.replace(minute=1)
    assert fires == ["Mon 23", "Mon 30", "Tue 01"]
