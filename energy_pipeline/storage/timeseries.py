"""The time-series store interface: hourly statistics, live readings, daily summaries.

Production backend: QuestDB (``storage/questdb.py``); embedded backend: SQLite
(``storage/sqlite_timeseries.py``). Both pass the same conformance suite and give identical numbers
for identical data. Every write is an upsert on ``(ts, entity_id)``: the later row wins, also within
one batch, which is what QuestDB's ``DEDUP UPSERT KEYS(ts, entity_id)`` does.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from energy_pipeline.storage.buckets import Period, ensure_utc


class StoreError(RuntimeError):
    """A store could not be reached or refused an operation; the message says which and what to do."""


class StoreUnavailableError(StoreError):
    """The store's server did not answer (refused, timed out, 503). Retrying later may succeed."""


@dataclass(frozen=True, slots=True)
class StatisticRow:
    """One hourly statistic: ``ts`` is the hour start (aware UTC). ``change`` is the hour's consumption."""

    ts: datetime
    entity_id: str
    change: float | None
    sum: float | None = None
    state: float | None = None
    mean: float | None = None
    min: float | None = None
    max: float | None = None
    source: str = "ha"


@dataclass(frozen=True, slots=True)
class Reading:
    """One live reading: ``ts`` is the state's ``last_changed`` (aware UTC)."""

    ts: datetime
    entity_id: str
    value: float


@dataclass(frozen=True, slots=True)
class DailySummary:
    """Consumption of one entity on one local day (``day`` in ``time_zone``); ``ts`` is its UTC start."""

    day: date
    ts: datetime
    entity_id: str
    consumption: float
    min_hourly: float | None
    max_hourly: float | None
    hours_present: int
    hours_expected: int
    time_zone: str


@dataclass(frozen=True, slots=True)
class ConsumptionBucket:
    """Consumption of one entity in one calendar bucket ``[start, end)`` (both aware UTC)."""

    start: datetime
    end: datetime
    entity_id: str
    consumption: float
    hours: int


@dataclass(frozen=True, slots=True)
class DuplicateKey:
    ts: datetime
    entity_id: str
    count: int


def finite_or_none(value: float | None) -> float | None:
    """NaN and ±inf are not measurements: store them as missing (NULL), never as numbers."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def last_wins(rows: Iterable, key=lambda row: (row.ts, row.entity_id)) -> list:
    """Collapse duplicate keys within one batch, keeping the last occurrence (QuestDB dedup semantics)."""
    latest: dict = {}
    for row in rows:
        latest[key(row)] = row
    return list(latest.values())


def validate_statistic(row: StatisticRow) -> StatisticRow:
    """Normalise one row for writing: UTC hour start, finite numbers or None. Raises ValueError on bad keys."""
    ts = ensure_utc(row.ts, f"statistic ts for {row.entity_id!r}")
    if ts.minute or ts.second or ts.microsecond:
        raise ValueError(f"statistic ts {ts.isoformat()} for {row.entity_id!r} is not the start of an hour")
    if not row.entity_id:
        raise ValueError("statistic row without entity_id")
    return StatisticRow(
        ts=ts, entity_id=row.entity_id, change=finite_or_none(row.change), sum=finite_or_none(row.sum),
        state=finite_or_none(row.state), mean=finite_or_none(row.mean), min=finite_or_none(row.min),
        max=finite_or_none(row.max), source=row.source,
    )


def validate_reading(row: Reading) -> Reading | None:
    """Normalise one reading; a non-finite value returns None (not stored). Raises ValueError on bad keys."""
    ts = ensure_utc(row.ts, f"reading ts for {row.entity_id!r}")
    if not row.entity_id:
        raise ValueError("reading without entity_id")
    value = finite_or_none(row.value)
    if value is None:
        return None
    return Reading(ts=ts, entity_id=row.entity_id, value=value)


def validate_daily_summary(row: DailySummary) -> DailySummary:
    """Normalise one summary for writing: aware UTC ts, finite consumption. Raises ValueError on bad rows."""
    ts = ensure_utc(row.ts, f"daily summary ts for {row.entity_id!r}")
    if not row.entity_id:
        raise ValueError("daily summary without entity_id")
    if not isinstance(row.day, date) or isinstance(row.day, datetime):
        raise ValueError(f"daily summary day {row.day!r} for {row.entity_id!r} must be a date")
    consumption = finite_or_none(row.consumption)
    if consumption is None:
        raise ValueError(f"daily summary for {row.entity_id!r} on {row.day} has no finite consumption")
    try:
        ZoneInfo(row.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"daily summary for {row.entity_id!r}: unknown time zone {row.time_zone!r}") from None
    return DailySummary(
        day=row.day, ts=ts, entity_id=row.entity_id, consumption=consumption,
        min_hourly=finite_or_none(row.min_hourly), max_hourly=finite_or_none(row.max_hourly),
        hours_present=int(row.hours_present), hours_expected=int(row.hours_expected), time_zone=row.time_zone,
    )


class TimeSeriesStore(ABC):
    """Hourly statistics, live readings and daily summaries, keyed by ``(ts, entity_id)``."""

    backend: str = "abstract"

    @abstractmethod
    def ensure_schema(self) -> None:
        """Create tables and indexes if missing; idempotent, called on first use."""

    @abstractmethod
    def health(self) -> None:
        """Raise :class:`StoreUnavailableError` if the store does not answer."""

    def close(self) -> None:  # noqa: B027 - optional for backends without connections
        """Release connections."""

    # -- writes (upserts; return the number of rows written after in-batch dedup) --
    @abstractmethod
    def write_statistics(self, rows: Iterable[StatisticRow]) -> int: ...

    @abstractmethod
    def write_readings(self, rows: Iterable[Reading]) -> int: ...

    @abstractmethod
    def write_daily_summaries(self, rows: Iterable[DailySummary]) -> int: ...

    @abstractmethod
    def delete_statistics(self, entity_ids: Sequence[str] | None, start: datetime, end: datetime,
                          source: str | None = None) -> int:
        """Delete statistics in ``[start, end)`` (optionally for some entities / one source)."""

    # -- reads; ranges are half-open ``[start, end)`` in UTC --
    @abstractmethod
    def read_statistics(self, entity_ids: Sequence[str] | None, start: datetime,
                        end: datetime) -> list[StatisticRow]:
        """Rows ordered by (entity_id, ts). ``None`` means every entity."""

    @abstractmethod
    def read_readings(self, entity_ids: Sequence[str] | None, start: datetime, end: datetime,
                      limit: int | None = None) -> list[Reading]:
        """Readings ordered by (ts, entity_id); ``limit`` keeps the earliest ``limit`` rows."""

    @abstractmethod
    def read_daily_summaries(self, entity_ids: Sequence[str] | None, start: datetime,
                             end: datetime) -> list[DailySummary]: ...

    @abstractmethod
    def latest_statistic_ts(self, entity_ids: Sequence[str] | None = None) -> dict[str, datetime]:
        """Latest stored hour per entity."""

    @abstractmethod
    def latest_reading_ts(self, entity_ids: Sequence[str] | None = None) -> dict[str, datetime]: ...

    @abstractmethod
    def count_statistics(self, entity_ids: Sequence[str] | None, start: datetime,
                         end: datetime) -> dict[str, int]:
        """Rows per entity in the range (entities with none are absent)."""

    @abstractmethod
    def duplicate_statistics(self, start: datetime, end: datetime) -> list[DuplicateKey]:
        """Keys stored more than once in the range (must stay empty; the check reports any)."""

    def missing_hours(self, entity_ids: Sequence[str], start: datetime, end: datetime) -> dict[str, list[datetime]]:
        """Hours in ``[start, end)`` with no statistics row, per entity (entities with none missing absent)."""
        from energy_pipeline.storage.buckets import floor_hour, next_bucket_start

        start, end = floor_hour(start), ensure_utc(end)
        present: dict[str, set[datetime]] = {e: set() for e in entity_ids}
        for row in self.read_statistics(list(entity_ids), start, end):
            present[row.entity_id].add(row.ts)
        missing: dict[str, list[datetime]] = {}
        for entity in entity_ids:
            hour, gaps = start, []
            while hour < end:
                if hour not in present[entity]:
                    gaps.append(hour)
                hour = next_bucket_start(hour, "hour", ZoneInfo("UTC"))
            if gaps:
                missing[entity] = gaps
        return missing

    @abstractmethod
    def aggregate_consumption(self, entity_ids: Sequence[str], start: datetime, end: datetime,
                              period: Period, time_zone: str) -> list[ConsumptionBucket]:
        """Sum of ``change`` per entity per local calendar bucket of ``period`` in ``time_zone``.

        Buckets come from :func:`energy_pipeline.storage.buckets.bucket_boundaries`; only rows inside
        ``[start, end)`` count; buckets with no rows are omitted. Ordered by (entity_id, start).
        """
