"""One conformance suite for every time-series backend (SQLite always, QuestDB when configured).

Expected numbers are worked out by hand in the comments: the hourly ``change`` of the DST fixtures is
the hour's index ``i`` (0, 1, 2, …) from the first hour, so a bucket's consumption is the sum of an
arithmetic series and any bucket boundary off by one hour changes the number.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import pytest

from energy_pipeline.storage.timeseries import (
    ConsumptionBucket,
    DailySummary,
    Reading,
    StatisticRow,
    TimeSeriesStore,
)

BERLIN = "Europe/Berlin"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def hours(start: datetime, count: int) -> list[datetime]:
    return [start + timedelta(hours=i) for i in range(count)]


def series(entity: str, start: datetime, count: int, change=lambda i: float(i), **kwargs) -> list[StatisticRow]:
    return [StatisticRow(ts=ts, entity_id=entity, change=change(i), sum=float(i), **kwargs)
            for i, ts in enumerate(hours(start, count))]


def bucket(start: datetime, end: datetime, entity: str, consumption: float, n: int) -> ConsumptionBucket:
    return ConsumptionBucket(start=start, end=end, entity_id=entity, consumption=consumption, hours=n)


def assert_buckets(actual: list[ConsumptionBucket], expected: list[ConsumptionBucket]) -> None:
    assert [(b.entity_id, b.start, b.end, b.hours) for b in actual] == \
        [(b.entity_id, b.start, b.end, b.hours) for b in expected]
    for got, want in zip(actual, expected, strict=True):
        assert got.consumption == pytest.approx(want.consumption, abs=1e-9), (got, want)


# --------------------------------------------------------------------------------------------------
# Writes: upserts, last wins, normalisation, validation
# --------------------------------------------------------------------------------------------------

def test_health_and_idempotent_schema(ts_store: TimeSeriesStore) -> None:
    ts_store.health()
    ts_store.ensure_schema()
    ts_store.ensure_schema()
    ts_store.health()


def test_statistics_round_trip(ts_store: TimeSeriesStore) -> None:
    rows = [
        StatisticRow(ts=utc(2025, 1, 1, 0), entity_id="sensor.grid", change=1.25, sum=101.25, state=5001.25,
                     mean=None, min=None, max=None, source="ha"),
        StatisticRow(ts=utc(2025, 1, 1, 1), entity_id="sensor.grid", change=0.75, sum=102.0, state=5002.0,
                     mean=0.5, min=0.25, max=1.5, source="legacy"),
        StatisticRow(ts=utc(2025, 1, 1, 0), entity_id="sensor.gas", change=0.1, sum=10.1, state=None),
    ]
    assert ts_store.write_statistics(rows) == 3
    got = ts_store.read_statistics(None, utc(2025, 1, 1), utc(2025, 1, 2))
    # ordered by (entity_id, ts)
    assert got == [rows[2], rows[0], rows[1]]
    assert all(r.ts.tzinfo is not None and r.ts.utcoffset() == timedelta(0) for r in got)


def test_write_in_other_offset_is_stored_as_utc(ts_store: TimeSeriesStore) -> None:
    berlin_hour = datetime.fromisoformat("2025-06-01T10:00:00+02:00")
    ts_store.write_statistics([StatisticRow(ts=berlin_hour, entity_id="sensor.a", change=1.0)])
    (row,) = ts_store.read_statistics(["sensor.a"], utc(2025, 6, 1), utc(2025, 6, 2))
    assert row.ts == utc(2025, 6, 1, 8) and row.ts.tzinfo == UTC


def test_upsert_later_write_wins(ts_store: TimeSeriesStore) -> None:
    ts = utc(2025, 2, 1, 5)
    ts_store.write_statistics([StatisticRow(ts=ts, entity_id="sensor.a", change=1.0, sum=1.0, source="legacy")])
    ts_store.write_statistics([StatisticRow(ts=ts, entity_id="sensor.a", change=2.0, sum=None, source="ha")])
    got = ts_store.read_statistics(["sensor.a"], ts, ts + timedelta(hours=1))
    assert got == [StatisticRow(ts=ts, entity_id="sensor.a", change=2.0, sum=None, source="ha")]
    assert ts_store.count_statistics(None, ts, ts + timedelta(hours=1)) == {"sensor.a": 1}


def test_last_wins_within_one_batch(ts_store: TimeSeriesStore) -> None:
    ts = utc(2025, 2, 1, 5)
    written = ts_store.write_statistics([
        StatisticRow(ts=ts, entity_id="sensor.a", change=1.0),
        StatisticRow(ts=ts + timedelta(hours=1), entity_id="sensor.a", change=5.0),
        StatisticRow(ts=ts, entity_id="sensor.a", change=3.0),
    ])
    assert written == 2
    got = ts_store.read_statistics(["sensor.a"], ts, ts + timedelta(hours=2))
    assert [(r.ts, r.change) for r in got] == [(ts, 3.0), (ts + timedelta(hours=1), 5.0)]


def test_nan_and_inf_are_stored_as_null(ts_store: TimeSeriesStore) -> None:
    ts = utc(2025, 3, 1, 0)
    ts_store.write_statistics([StatisticRow(ts=ts, entity_id="sensor.a", change=math.nan, sum=math.inf,
                                            state=-math.inf, mean=2.5, min=math.nan, max=1.0)])
    (row,) = ts_store.read_statistics(["sensor.a"], ts, ts + timedelta(hours=1))
    assert (row.change, row.sum, row.state, row.mean, row.min, row.max) == (None, None, None, 2.5, None, 1.0)


def test_naive_datetimes_are_refused(ts_store: TimeSeriesStore) -> None:
    naive = datetime(2025, 1, 1, 0)
    aware = utc(2025, 1, 1)
    with pytest.raises(ValueError, match="no time zone"):
        ts_store.write_statistics([StatisticRow(ts=naive, entity_id="sensor.a", change=1.0)])
    with pytest.raises(ValueError, match="no time zone"):
        ts_store.write_readings([Reading(ts=naive, entity_id="sensor.a", value=1.0)])
    with pytest.raises(ValueError, match="no time zone"):
        ts_store.write_daily_summaries([DailySummary(day=date(2025, 1, 1), ts=naive, entity_id="sensor.a",
                                                     consumption=1.0, min_hourly=None, max_hourly=None,
                                                     hours_present=1, hours_expected=24, time_zone=BERLIN)])
    with pytest.raises(ValueError, match="no time zone"):
        ts_store.read_statistics(None, naive, aware)
    with pytest.raises(ValueError, match="no time zone"):
        ts_store.read_readings(None, aware, naive)
    with pytest.raises(ValueError, match="no time zone"):
        ts_store.count_statistics(None, naive, aware)
    with pytest.raises(ValueError, match="no time zone"):
        ts_store.aggregate_consumption(["sensor.a"], naive, aware, "day", BERLIN)
    with pytest.raises(ValueError, match="no time zone"):
        ts_store.delete_statistics(None, naive, aware)
    # nothing was written by the refused batches
    assert ts_store.read_statistics(None, utc(2024, 1, 1), utc(2026, 1, 1)) == []


def test_statistic_not_at_hour_start_is_refused(ts_store: TimeSeriesStore) -> None:
    with pytest.raises(ValueError, match="not the start of an hour"):
        ts_store.write_statistics([StatisticRow(ts=utc(2025, 1, 1, 0, 30), entity_id="sensor.a", change=1.0)])


def test_empty_batches_write_nothing(ts_store: TimeSeriesStore) -> None:
    assert ts_store.write_statistics([]) == 0
    assert ts_store.write_readings([]) == 0
    assert ts_store.write_daily_summaries([]) == 0
    assert ts_store.write_statistics(iter(())) == 0
    # a batch of only non-finite readings is empty after normalisation
    assert ts_store.write_readings([Reading(ts=utc(2025, 1, 1), entity_id="sensor.a", value=math.nan)]) == 0


# --------------------------------------------------------------------------------------------------
# Readings
# --------------------------------------------------------------------------------------------------

def test_readings_skip_non_finite_keep_last_and_order(ts_store: TimeSeriesStore) -> None:
    t = utc(2025, 4, 1, 12, 0, 0)
    written = ts_store.write_readings([
        Reading(ts=t + timedelta(seconds=5, microseconds=250), entity_id="sensor.b", value=2.0),
        Reading(ts=t, entity_id="sensor.b", value=1.0),
        Reading(ts=t, entity_id="sensor.a", value=10.0),
        Reading(ts=t + timedelta(seconds=1), entity_id="sensor.a", value=math.inf),
        Reading(ts=t + timedelta(seconds=2), entity_id="sensor.a", value=math.nan),
        Reading(ts=t, entity_id="sensor.b", value=1.5),  # same key again: last wins
    ])
    assert written == 3
    got = ts_store.read_readings(None, t, t + timedelta(minutes=1))
    assert got == [
        Reading(ts=t, entity_id="sensor.a", value=10.0),
        Reading(ts=t, entity_id="sensor.b", value=1.5),
        Reading(ts=t + timedelta(seconds=5, microseconds=250), entity_id="sensor.b", value=2.0),
    ]
    # limit keeps the earliest rows; entity filter; half-open range
    assert ts_store.read_readings(None, t, t + timedelta(minutes=1), limit=2) == got[:2]
    assert ts_store.read_readings(["sensor.b"], t, t + timedelta(minutes=1)) == got[1:]
    assert ts_store.read_readings(None, t, t + timedelta(seconds=5, microseconds=250)) == got[:2]
    assert ts_store.read_readings([], t, t + timedelta(minutes=1)) == []
    # a later write of the same key replaces the value
    ts_store.write_readings([Reading(ts=t, entity_id="sensor.a", value=11.0)])
    assert ts_store.read_readings(["sensor.a"], t, t + timedelta(minutes=1))[0].value == 11.0


def test_latest_reading_per_entity(ts_store: TimeSeriesStore) -> None:
    t = utc(2025, 4, 1, 12)
    ts_store.write_readings([Reading(ts=t + timedelta(seconds=s), entity_id=e, value=1.0)
                             for e, s in (("sensor.a", 1), ("sensor.a", 30), ("sensor.b", 7))])
    assert ts_store.latest_reading_ts() == {"sensor.a": t + timedelta(seconds=30),
                                            "sensor.b": t + timedelta(seconds=7)}
    assert ts_store.latest_reading_ts(["sensor.b", "sensor.zzz"]) == {"sensor.b": t + timedelta(seconds=7)}
    assert ts_store.latest_reading_ts([]) == {}


# --------------------------------------------------------------------------------------------------
# Reads of statistics: filters, latest, counts, gaps, duplicates, deletes
# --------------------------------------------------------------------------------------------------

def test_read_statistics_filters_entities_and_half_open_range(ts_store: TimeSeriesStore) -> None:
    start = utc(2025, 5, 1)
    ts_store.write_statistics(series("sensor.a", start, 5) + series("sensor.b", start, 5)
                              + series("sensor.c", start, 5))
    got = ts_store.read_statistics(["sensor.c", "sensor.a"], start + timedelta(hours=1), start + timedelta(hours=3))
    assert [(r.entity_id, r.ts) for r in got] == [
        ("sensor.a", start + timedelta(hours=1)), ("sensor.a", start + timedelta(hours=2)),
        ("sensor.c", start + timedelta(hours=1)), ("sensor.c", start + timedelta(hours=2)),
    ]
    assert ts_store.read_statistics([], start, start + timedelta(days=1)) == []
    assert ts_store.read_statistics(["sensor.unknown"], start, start + timedelta(days=1)) == []


def test_latest_statistic_and_counts(ts_store: TimeSeriesStore) -> None:
    start = utc(2025, 5, 1)
    ts_store.write_statistics(series("sensor.a", start, 10) + series("sensor.b", start, 3))
    assert ts_store.latest_statistic_ts() == {"sensor.a": start + timedelta(hours=9),
                                              "sensor.b": start + timedelta(hours=2)}
    assert ts_store.latest_statistic_ts(["sensor.b"]) == {"sensor.b": start + timedelta(hours=2)}
    assert ts_store.latest_statistic_ts([]) == {}
    assert ts_store.count_statistics(None, start, start + timedelta(hours=5)) == {"sensor.a": 5, "sensor.b": 3}
    assert ts_store.count_statistics(["sensor.a"], start + timedelta(hours=8), start + timedelta(days=1)) == \
        {"sensor.a": 2}
    assert ts_store.count_statistics(None, start + timedelta(days=1), start + timedelta(days=2)) == {}


def test_missing_hours(ts_store: TimeSeriesStore) -> None:
    start = utc(2025, 5, 1)
    rows = [r for r in series("sensor.a", start, 6) if r.ts.hour not in (2, 3)]
    ts_store.write_statistics(rows + series("sensor.b", start, 6))
    missing = ts_store.missing_hours(["sensor.a", "sensor.b", "sensor.c"], start, start + timedelta(hours=6))
    assert missing == {
        "sensor.a": [start + timedelta(hours=2), start + timedelta(hours=3)],
        "sensor.c": hours(start, 6),
    }


def test_duplicates_stay_empty_after_upserts(ts_store: TimeSeriesStore) -> None:
    start = utc(2025, 5, 1)
    ts_store.write_statistics(series("sensor.a", start, 4))
    ts_store.write_statistics(series("sensor.a", start, 4, change=lambda i: 2.0 * i))
    ts_store.write_statistics(series("sensor.a", start, 4) + series("sensor.a", start, 4))
    assert ts_store.duplicate_statistics(start - timedelta(days=1), start + timedelta(days=1)) == []
    assert ts_store.count_statistics(None, start, start + timedelta(days=1)) == {"sensor.a": 4}


def test_delete_statistics(ts_store: TimeSeriesStore) -> None:
    start = utc(2025, 6, 1)
    ts_store.write_statistics(series("sensor.a", start, 6, source="legacy") + series("sensor.b", start, 6))
    ts_store.write_statistics(series("sensor.a", start + timedelta(hours=6), 2, source="ha"))
    # by entity and range: [02:00, 04:00) of sensor.a only
    assert ts_store.delete_statistics(["sensor.a"], start + timedelta(hours=2), start + timedelta(hours=4)) == 2
    # by source: the remaining legacy rows of sensor.a (hours 0, 1, 4, 5), not the "ha" ones at 6 and 7
    assert ts_store.delete_statistics(None, start, start + timedelta(days=1), source="legacy") == 4
    assert ts_store.count_statistics(None, start, start + timedelta(days=1)) == {"sensor.a": 2, "sensor.b": 6}
    assert [r.ts.hour for r in ts_store.read_statistics(["sensor.a"], start, start + timedelta(days=1))] == [6, 7]
    # deleting again finds nothing; an empty entity list deletes nothing
    assert ts_store.delete_statistics(None, start, start + timedelta(days=1), source="legacy") == 0
    assert ts_store.delete_statistics([], start, start + timedelta(days=1)) == 0
    assert ts_store.latest_statistic_ts(["sensor.a"]) == {"sensor.a": start + timedelta(hours=7)}
    # a deleted hour can be written again
    ts_store.write_statistics([StatisticRow(ts=start, entity_id="sensor.a", change=9.0, source="ha")])
    assert ts_store.read_statistics(["sensor.a"], start, start + timedelta(hours=1))[0].change == 9.0
    assert ts_store.missing_hours(["sensor.a"], start, start + timedelta(hours=8)) == {
        "sensor.a": hours(start + timedelta(hours=1), 5)}
    # deleting the latest hours moves "latest" back
    ts_store.delete_statistics(["sensor.a"], start + timedelta(hours=6), start + timedelta(hours=8))
    assert ts_store.latest_statistic_ts(["sensor.a"]) == {"sensor.a": start}
    assert ts_store.aggregate_consumption(["sensor.a"], start, start + timedelta(days=1), "day", "UTC") == [
        bucket(start, start + timedelta(days=1), "sensor.a", 9.0, 1)]


# --------------------------------------------------------------------------------------------------
# Daily summaries
# --------------------------------------------------------------------------------------------------

def test_daily_summaries_round_trip_and_upsert(ts_store: TimeSeriesStore) -> None:
    # 2025-03-30 in Berlin is 23 hours long and starts at 2025-03-29T23:00Z
    spring = DailySummary(day=date(2025, 3, 30), ts=utc(2025, 3, 29, 23), entity_id="sensor.a", consumption=23.5,
                          min_hourly=0.5, max_hourly=2.0, hours_present=23, hours_expected=23, time_zone=BERLIN)
    other = DailySummary(day=date(2025, 3, 31), ts=utc(2025, 3, 30, 22), entity_id="sensor.a", consumption=0.0,
                         min_hourly=None, max_hourly=None, hours_present=0, hours_expected=24, time_zone=BERLIN)
    b_day = DailySummary(day=date(2025, 3, 30), ts=utc(2025, 3, 29, 23), entity_id="sensor.b", consumption=1.0,
                         min_hourly=0.0, max_hourly=1.0, hours_present=20, hours_expected=23, time_zone=BERLIN)
    assert ts_store.write_daily_summaries([spring, other, b_day]) == 3
    got = ts_store.read_daily_summaries(None, utc(2025, 3, 29), utc(2025, 4, 1))
    assert got == [spring, other, b_day]
    fixed = DailySummary(day=spring.day, ts=spring.ts, entity_id="sensor.a", consumption=24.0, min_hourly=0.25,
                         max_hourly=3.0, hours_present=23, hours_expected=23, time_zone=BERLIN)
    assert ts_store.write_daily_summaries([fixed]) == 1
    assert ts_store.read_daily_summaries(["sensor.a"], utc(2025, 3, 29), utc(2025, 3, 30)) == [fixed]
    assert ts_store.read_daily_summaries(["sensor.b"], utc(2025, 3, 30), utc(2025, 4, 1)) == []


# --------------------------------------------------------------------------------------------------
# Aggregation by local calendar buckets across both DST changes of 2025 in Europe/Berlin
# --------------------------------------------------------------------------------------------------

# Spring: local days Sat 29, Sun 30 (23 h: 02:00 CET jumps to 03:00 CEST), Mon 31 March 2025.
SPRING_START = utc(2025, 3, 28, 23)   # Sat 29 March 00:00 CET
SPRING_HOURS = 24 + 23 + 24           # i = 0..70
# Autumn: local days Sat 25, Sun 26 (25 h: 03:00 CEST falls back to 02:00 CET), Mon 27 October 2025.
AUTUMN_START = utc(2025, 10, 24, 22)  # Sat 25 October 00:00 CEST
AUTUMN_HOURS = 24 + 25 + 24           # i = 0..72


@pytest.fixture
def dst_store(ts_store: TimeSeriesStore) -> TimeSeriesStore:
    ts_store.write_statistics(
        series("sensor.a", SPRING_START, SPRING_HOURS)
        + series("sensor.a", AUTUMN_START, AUTUMN_HOURS)
        + series("sensor.b", SPRING_START, SPRING_HOURS, change=lambda i: 2.0)
        # NULL change is not a measurement: neither consumption nor an hour
        + [StatisticRow(ts=SPRING_START - timedelta(hours=1), entity_id="sensor.b", change=None, sum=5.0)]
        # another entity, never asked for
        + series("sensor.c", SPRING_START, SPRING_HOURS, change=lambda i: 1000.0)
    )
    return ts_store


def test_aggregate_days_across_spring_change(dst_store: TimeSeriesStore) -> None:
    got = dst_store.aggregate_consumption(["sensor.a", "sensor.b"], SPRING_START, utc(2025, 3, 31, 22), "day",
                                          BERLIN)
    sat, sun, mon, tue = utc(2025, 3, 28, 23), utc(2025, 3, 29, 23), utc(2025, 3, 30, 22), utc(2025, 3, 31, 22)
    assert_buckets(got, [
        bucket(sat, sun, "sensor.a", 276.0, 24),   # 0+…+23
        bucket(sun, mon, "sensor.a", 805.0, 23),   # 24+…+46 = (24+46)*23/2
        bucket(mon, tue, "sensor.a", 1404.0, 24),  # 47+…+70 = (47+70)*24/2
        bucket(sat, sun, "sensor.b", 48.0, 24),
        bucket(sun, mon, "sensor.b", 46.0, 23),
        bucket(mon, tue, "sensor.b", 48.0, 24),
    ])


def test_aggregate_days_across_autumn_change(dst_store: TimeSeriesStore) -> None:
    got = dst_store.aggregate_consumption(["sensor.a"], AUTUMN_START, utc(2025, 10, 27, 23), "day", BERLIN)
    sat, sun, mon, tue = utc(2025, 10, 24, 22), utc(2025, 10, 25, 22), utc(2025, 10, 26, 23), utc(2025, 10, 27, 23)
    assert_buckets(got, [
        bucket(sat, sun, "sensor.a", 276.0, 24),   # 0+…+23
        bucket(sun, mon, "sensor.a", 900.0, 25),   # 24+…+48 = (24+48)*25/2
        bucket(mon, tue, "sensor.a", 1452.0, 24),  # 49+…+72 = (49+72)*24/2
    ])


def test_aggregate_weeks_start_on_monday(dst_store: TimeSeriesStore) -> None:
    spring = dst_store.aggregate_consumption(["sensor.a"], SPRING_START, SPRING_START + timedelta(hours=71),
                                             "week", BERLIN)
    # Mon 24 March 00:00 CET = 23 March 23:00Z; Mon 31 March 00:00 CEST = 30 March 22:00Z; Mon 7 April.
    assert_buckets(spring, [
        bucket(utc(2025, 3, 23, 23), utc(2025, 3, 30, 22), "sensor.a", 1081.0, 47),  # 0+…+46
        bucket(utc(2025, 3, 30, 22), utc(2025, 4, 6, 22), "sensor.a", 1404.0, 24),   # 47+…+70
    ])
    autumn = dst_store.aggregate_consumption(["sensor.a"], AUTUMN_START, AUTUMN_START + timedelta(hours=73),
                                             "week", BERLIN)
    # Mon 20 October 00:00 CEST = 19 October 22:00Z; Mon 27 October 00:00 CET = 26 October 23:00Z.
    assert_buckets(autumn, [
        bucket(utc(2025, 10, 19, 22), utc(2025, 10, 26, 23), "sensor.a", 1176.0, 49),  # 0+…+48
        bucket(utc(2025, 10, 26, 23), utc(2025, 11, 2, 23), "sensor.a", 1452.0, 24),   # 49+…+72
    ])


def test_aggregate_months(dst_store: TimeSeriesStore) -> None:
    got = dst_store.aggregate_consumption(["sensor.a"], utc(2025, 1, 1), utc(2026, 1, 1), "month", BERLIN)
    assert_buckets(got, [
        # March (a 743-hour month): 1 March 00:00 CET = 28 Feb 23:00Z to 1 April 00:00 CEST = 31 March
        # 22:00Z; the spring series (29 to 31 March, local) lies inside it: i = 0..70
        bucket(utc(2025, 2, 28, 23), utc(2025, 3, 31, 22), "sensor.a", 2485.0, 71),
        # October ends at 1 November 00:00 CET = 31 October 23:00Z and holds the whole autumn series
        bucket(utc(2025, 9, 30, 22), utc(2025, 10, 31, 23), "sensor.a", 2628.0, 73),  # 0+…+72
    ])


def test_aggregate_hours_are_utc_hours_through_the_gap(dst_store: TimeSeriesStore) -> None:
    got = dst_store.aggregate_consumption(["sensor.a"], utc(2025, 3, 30, 0), utc(2025, 3, 30, 3), "hour", BERLIN)
    # 00:00Z is i=25; 01:00Z (local 02:00 CET became 03:00 CEST) is i=26; 02:00Z is i=27
    assert_buckets(got, [bucket(utc(2025, 3, 30, h), utc(2025, 3, 30, h + 1), "sensor.a", 25.0 + h, 1)
                         for h in range(3)])
    whole = dst_store.aggregate_consumption(["sensor.a"], SPRING_START, utc(2025, 4, 1), "hour", BERLIN)
    assert len(whole) == SPRING_HOURS
    assert sum(b.consumption for b in whole) == pytest.approx(2485.0)  # 0+…+70


def test_aggregate_counts_only_rows_inside_the_range(dst_store: TimeSeriesStore) -> None:
    # [05:00Z on 29 March, 05:00Z on 30 March) holds i = 6..29; the buckets keep their local bounds.
    got = dst_store.aggregate_consumption(["sensor.a"], utc(2025, 3, 29, 5), utc(2025, 3, 30, 5), "day", BERLIN)
    assert_buckets(got, [
        bucket(utc(2025, 3, 28, 23), utc(2025, 3, 29, 23), "sensor.a", 261.0, 18),  # 6+…+23
        bucket(utc(2025, 3, 29, 23), utc(2025, 3, 30, 22), "sensor.a", 159.0, 6),   # 24+…+29
    ])


def test_aggregate_skips_null_change_and_empty_buckets(dst_store: TimeSeriesStore) -> None:
    # sensor.b has only a NULL-change row on 28 March (local): no bucket for that day
    got = dst_store.aggregate_consumption(["sensor.b", "sensor.none"], utc(2025, 3, 27), utc(2025, 3, 30),
                                          "day", BERLIN)
    assert_buckets(got, [
        bucket(utc(2025, 3, 28, 23), utc(2025, 3, 29, 23), "sensor.b", 48.0, 24),
        bucket(utc(2025, 3, 29, 23), utc(2025, 3, 30, 22), "sensor.b", 2.0, 1),  # only 29 March 23:00Z
    ])
    assert dst_store.aggregate_consumption([], utc(2025, 3, 27), utc(2025, 3, 30), "day", BERLIN) == []
    assert dst_store.aggregate_consumption(["sensor.a"], utc(2025, 3, 30), utc(2025, 3, 30), "day", BERLIN) == []


def test_aggregate_in_utc_gives_24_hour_days(dst_store: TimeSeriesStore) -> None:
    got = dst_store.aggregate_consumption(["sensor.a"], utc(2025, 3, 30), utc(2025, 3, 31), "day", "UTC")
    # 30 March 00:00Z is i=25, so the UTC day holds i = 25..48
    assert_buckets(got, [bucket(utc(2025, 3, 30), utc(2025, 3, 31), "sensor.a", 876.0, 24)])
