"""Statistics periods as Home Assistant computes them (recorder ``statistics.py``).

Kept next to the client because chunked requests must cut long ranges exactly where HA's buckets
start, and the simulator must build the same buckets: HA aligns day/week/month windows to local
midnight (wall-clock arithmetic, so a DST day has 23 or 25 hours) and extends ``end_time`` to the
end of the bucket that contains it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from energy_pipeline.storage.buckets import bucket_start, ensure_utc

PERIODS: tuple[str, ...] = ("5minute", "hour", "day", "week", "month")
FIXED_PERIOD_SECONDS: dict[str, int] = {"5minute": 300, "hour": 3600}
CALENDAR_PERIODS: frozenset[str] = frozenset({"day", "week", "month"})
#: Nominal length, used only to size chunks (never to compute a boundary).
NOMINAL_PERIOD_SECONDS: dict[str, int] = {"5minute": 300, "hour": 3600, "day": 86400, "week": 7 * 86400,
                                          "month": 31 * 86400}


def _month_after(local: datetime) -> datetime:
    return (local.replace(day=28) + timedelta(days=4)).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def add_periods(start: datetime, period: str, count: int, tz: ZoneInfo) -> datetime:
    """``start`` (a bucket start) moved ``count`` buckets forward, in HA's wall-clock arithmetic."""
    start = ensure_utc(start)
    if period in FIXED_PERIOD_SECONDS:
        return start + timedelta(seconds=FIXED_PERIOD_SECONDS[period] * count)
    local = start.astimezone(tz)
    if period == "day":
        moved = local + timedelta(days=count)
    elif period == "week":
        moved = local + timedelta(days=7 * count)
    elif period == "month":
        moved = local
        for _ in range(count):
            moved = _month_after(moved)
    else:
        raise ValueError(f"unknown period {period!r}; use one of {', '.join(PERIODS)}")
    return _wall(moved, tz).astimezone(UTC)


def _wall(local: datetime, tz: ZoneInfo) -> datetime:
    """Re-attach ``tz`` so the UTC offset matches the wall time (fold 0, like HA's ``timestamp()``)."""
    return local.replace(tzinfo=None).replace(tzinfo=tz, fold=0)


def aligned_window(start: datetime, end: datetime | None, period: str,
                   tz: ZoneInfo) -> tuple[datetime, datetime | None]:
    """The window HA really queries: day/week/month start floored, end moved to its bucket's end."""
    start = ensure_utc(start, "start")
    if period not in CALENDAR_PERIODS:
        return start, None if end is None else ensure_utc(end, "end")
    aligned_start = bucket_start(start, period, tz)
    if end is None:
        return aligned_start, None
    return aligned_start, add_periods(bucket_start(ensure_utc(end, "end"), period, tz), period, 1, tz)
