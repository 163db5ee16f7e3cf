from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from energy_pipeline.storage.buckets import (
    bucket_boundaries,
    bucket_start,
    ensure_utc,
    micros_to_utc,
    utc_to_micros,
)

BERLIN = ZoneInfo("Europe/Berlin")


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def test_naive_datetime_is_rejected_with_a_clear_message():
    with pytest.raises(ValueError, match="has no time zone"):
        ensure_utc(datetime(2025, 1, 1))


def test_dst_days_have_23_and_25_hours():
    spring = bucket_boundaries(utc(2025, 3, 29, 23), utc(2025, 3, 30, 22), "day", BERLIN)
    assert spring[0] == utc(2025, 3, 29, 23) and spring[1] == utc(2025, 3, 30, 22)
    assert (spring[1] - spring[0]) == timedelta(hours=23)
    autumn = bucket_boundaries(utc(2025, 10, 25, 22), utc(2025, 10, 26, 23), "day", BERLIN)
    assert autumn[1] - autumn[0] == timedelta(hours=25)


def test_weeks_start_on_monday_local_midnight():
    # Wednesday 2025-01-08 12:00 UTC belongs to the week starting Monday 2025-01-06 00:00 Berlin.
    assert bucket_start(utc(2025, 1, 8, 12), "week", BERLIN) == utc(2025, 1, 5, 23)


def test_month_boundaries_follow_local_calendar():
    bounds = bucket_boundaries(utc(2025, 2, 10), utc(2025, 4, 2), "month", BERLIN)
    assert bounds == [utc(2025, 1, 31, 23), utc(2025, 2, 28, 23), utc(2025, 3, 31, 22), utc(2025, 4, 30, 22)]


def test_hour_buckets_and_empty_ranges():
    assert bucket_boundaries(utc(2025, 1, 1, 0, 30), utc(2025, 1, 1, 2), "hour", BERLIN) == [
        utc(2025, 1, 1, 0), utc(2025, 1, 1, 1), utc(2025, 1, 1, 2)]
    assert bucket_boundaries(utc(2025, 1, 1), utc(2025, 1, 1), "day", BERLIN) == []


def test_unknown_period_is_an_error():
    with pytest.raises(ValueError, match="unknown period"):
        bucket_start(utc(2025, 1, 1), "fortnight", BERLIN)  # type: ignore[arg-type]


def test_micros_round_trip():
    instant = utc(2025, 6, 1, 12, 30, 15, 123456)
    assert micros_to_utc(utc_to_micros(instant)) == instant
    assert utc_to_micros(utc(1970, 1, 1, 0, 0, 1)) == 1_000_000
