"""Calendar buckets in a local time zone, shared by every backend so they agree to the hour.

A local day is 23, 24 or 25 hours long; a week starts on Monday at local midnight; a month at the
first local midnight of the month. Boundaries are computed in local wall time and converted to UTC,
so all storage keeps UTC while buckets follow the house's calendar.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Period = Literal["hour", "day", "week", "month"]
PERIODS: tuple[str, ...] = ("hour", "day", "week", "month")


def ensure_utc(value: datetime, name: str = "datetime") -> datetime:
    """Return ``value`` in UTC; a naive datetime is an error, never silently guessed."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} {value.isoformat()} has no time zone; pass an aware datetime (e.g. ...+00:00)")
    return value.astimezone(UTC)


def floor_hour(value: datetime) -> datetime:
    value = ensure_utc(value)
    return value.replace(minute=0, second=0, microsecond=0)


def _local_midnight(day: datetime, tz: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz)


def bucket_start(instant: datetime, period: Period, tz: ZoneInfo) -> datetime:
    """The start (aware, UTC) of the local bucket containing ``instant``."""
    instant = ensure_utc(instant)
    if period == "hour":
        return floor_hour(instant)
    if period == "5minute":  # HA's short-term statistics
        return instant.replace(minute=instant.minute - instant.minute % 5, second=0, microsecond=0)
    local = instant.astimezone(tz)
    if period == "day":
        start = _local_midnight(local, tz)
    elif period == "week":
        monday = local - timedelta(days=local.weekday())
        start = _local_midnight(monday, tz)
    elif period == "month":
        start = datetime(local.year, local.month, 1, tzinfo=tz)
    else:
        raise ValueError(f"unknown period {period!r}; use one of {', '.join(PERIODS)}")
    return start.astimezone(UTC)


def next_bucket_start(start_utc: datetime, period: Period, tz: ZoneInfo) -> datetime:
    """The start (UTC) of the bucket after the one starting at ``start_utc``."""
    if period == "hour":
        return start_utc + timedelta(hours=1)
    local = start_utc.astimezone(tz)
    if period == "day":
        nxt = local.date() + timedelta(days=1)
        return datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz).astimezone(UTC)
    if period == "week":
        nxt = local.date() + timedelta(days=7)
        return datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz).astimezone(UTC)
    if period == "month":
        year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
        return datetime(year, month, 1, tzinfo=tz).astimezone(UTC)
    raise ValueError(f"unknown period {period!r}; use one of {', '.join(PERIODS)}")


def bucket_boundaries(start: datetime, end: datetime, period: Period, tz: ZoneInfo) -> list[datetime]:
    """UTC boundaries ``[b0, b1, ..., bn]`` of the local buckets covering ``[start, end)``.

    ``b0`` is the start of the bucket holding ``start``; ``bn >= end``. Bucket *i* is ``[b_i, b_i+1)``.
    """
    start, end = ensure_utc(start, "start"), ensure_utc(end, "end")
    if end <= start:
        return []
    bounds = [bucket_start(start, period, tz)]
    while bounds[-1] < end:
        bounds.append(next_bucket_start(bounds[-1], period, tz))
    return bounds


def utc_to_micros(value: datetime) -> int:
    """Epoch microseconds of an aware datetime (the integer ``ts`` the embedded store keeps)."""
    value = ensure_utc(value)
    return (value - _EPOCH) // timedelta(microseconds=1)


def micros_to_utc(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
