"""Standard 5-field crontab expressions → APScheduler 3 triggers, with cron's day-of-week numbering.

APScheduler 3's ``CronTrigger.from_crontab`` counts weekdays from Monday = 0, so ``0 3 * * 1`` would run
on Tuesdays; users write cron, so numeric weekdays are translated to names first (0 and 7 = Sunday). And
when both day fields are restricted, cron runs on either, where a CronTrigger would require both.
"""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_TOKEN = re.compile(r"^(\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(\d+))?$")


def _day(value: str) -> int:
    if value.isdigit():
        number = int(value)
        if not 0 <= number <= 7:
            raise ValueError(f"day of week {value} is out of range 0-7")
        return number % 7
    if value[:3] in _NAMES:
        return _NAMES.index(value[:3])
    raise ValueError(f"unknown day of week {value!r}")


def cron_days(field: str) -> list[int]:
    """Cron day-of-week field → sorted day numbers (0 = Sunday)."""
    days: set[int] = set()
    for token in field.lower().split(","):
        match = _TOKEN.match(token)
        if not match:
            raise ValueError(f"bad day-of-week {token!r}")
        span, step = match.group(1), int(match.group(2) or 1)
        if step < 1:
            raise ValueError("a step must be at least 1")
        if span == "*":
            lo, hi = 0, 6
        elif "-" in span:
            a, b = span.split("-")
            lo, hi = _day(a), (7 if b == "7" else _day(b))
            if hi < lo:
                raise ValueError(f"day-of-week range {token!r} runs backwards")
        else:
            lo = hi = _day(span)
        days.update(d % 7 for d in range(lo, hi + 1, step))
    return sorted(days)


def cron_trigger(expr: str, timezone: str) -> Any:
    """An APScheduler ``CronTrigger`` for a standard crontab expression; ValueError if invalid."""
    from apscheduler.triggers.cron import CronTrigger

    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"{expr!r} needs 5 fields (minute hour day month weekday), has {len(fields)}")
    minute, hour, day, month, dow = fields
    weekday = "*" if dow == "*" else ",".join(_NAMES[d] for d in cron_days(dow))
    zone = check_timezone(timezone)
    if day != "*" and weekday != "*":
        # cron runs when EITHER day field matches; one APScheduler CronTrigger would need both
        from apscheduler.triggers.combining import OrTrigger

        return OrTrigger(
            [
                CronTrigger(minute=minute, hour=hour, day=day, month=month, timezone=zone),
                CronTrigger(minute=minute, hour=hour, month=month, day_of_week=weekday, timezone=zone),
            ]
        )
    return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=weekday, timezone=zone)


def check_timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc
