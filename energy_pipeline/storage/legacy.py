"""Reader of the previous app's SQLite database (``energy.db``, schema in DESIGN §6).

Its ``start_time`` holds whatever HA sent: epoch milliseconds as text, or ISO 8601 with or without
offset (no offset = UTC, SQLite's convention). It has no ``change``: we derive it from consecutive
``sum`` values of the same entity, in time order, across month boundaries. Rows that cannot be read
are returned with the reason, never dropped silently.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from energy_pipeline.storage.timeseries import StatisticRow

REQUIRED_COLUMNS = {"id", "entity_id", "start_time", "state", "sum", "mean", "min", "max", "period"}


class LegacyDatabaseError(RuntimeError):
    """The file is missing or is not the previous app's database."""


@dataclass(frozen=True, slots=True)
class RejectedRow:
    row_id: int
    entity_id: str | None
    start_time: str | None
    reason: str


@dataclass
class LegacyScan:
    """Every row of ``energy_statistics`` classified: hourly rows (with derived change), other periods,
    duplicates of the same instant in another encoding (the later id wins), and rejected rows."""

    hourly: list[StatisticRow] = field(default_factory=list)
    other_periods: list[tuple[str, datetime, str]] = field(default_factory=list)  # entity, start, period
    duplicates: list[tuple[str, datetime]] = field(default_factory=list)
    rejected: list[tuple[RejectedRow, datetime | None]] = field(default_factory=list)


def parse_start_time(value: object) -> datetime:
    """``"1735689600000"`` (ms), ``"2025-01-01T00:00:00+01:00"``, ``"2025-01-01 00:00:00"`` (UTC)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value) / 1000.0, tz=UTC)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"start_time {value!r} is empty or not text")
    text = value.strip()
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000.0, tz=UTC)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"start_time {text!r} is neither epoch milliseconds nor ISO 8601") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _number(value: object, column: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    else:
        try:
            number = float(str(value))
        except ValueError:
            raise ValueError(f"{column} {value!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{column} {value!r} is not finite")
    return number


class LegacyDatabase:
    """Read-only access to an ``energy.db``; opening checks the schema and says what is wrong."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        if not self.path.is_file():
            raise LegacyDatabaseError(
                f"legacy database {self.path} not found: set LEGACY_SQLITE_PATH to the previous app's energy.db"
            )
        self._conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        try:
            columns = {r[1] for r in self._conn.execute("PRAGMA table_info(energy_statistics)")}
        except sqlite3.DatabaseError as exc:
            raise LegacyDatabaseError(f"{self.path} is not an SQLite database: {exc}") from None
        if not columns >= REQUIRED_COLUMNS:
            raise LegacyDatabaseError(
                f"{self.path} has no energy_statistics table with columns {sorted(REQUIRED_COLUMNS)}; "
                "is it the previous app's energy.db?"
            )

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> LegacyDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def first_instant(self) -> datetime | None:
        """Earliest readable start_time, cheaply (used to lay out the monthly partitions)."""
        candidates: list[datetime] = []
        row = self._conn.execute(
            "SELECT MIN(CAST(start_time AS INTEGER)) FROM energy_statistics "
            "WHERE start_time NOT GLOB '*[^0-9]*' AND start_time != ''").fetchone()
        if row and row[0] is not None:
            candidates.append(parse_start_time(str(row[0])))
        row = self._conn.execute(
            "SELECT MIN(start_time) FROM energy_statistics WHERE start_time GLOB '[0-9][0-9][0-9][0-9]-*'").fetchone()
        if row and row[0] is not None:
            with contextlib.suppress(ValueError):
                candidates.append(parse_start_time(row[0]))
        return min(candidates) if candidates else None

    def entities(self) -> list[dict[str, object]]:
        try:
            cursor = self._conn.execute(
                "SELECT entity_id, friendly_name, device_class, unit_of_measurement, is_active FROM entities")
        except sqlite3.OperationalError:
            return []
        return [dict(zip(("entity_id", "name", "device_class", "unit", "is_active"), r, strict=True))
                for r in cursor]

    def scan(self) -> LegacyScan:
        """Read and classify every row once; change is derived per entity in time order."""
        scan = LegacyScan()
        hourly: dict[tuple[str, datetime], tuple[int, tuple]] = {}
        cursor = self._conn.execute(
            "SELECT id, entity_id, start_time, state, sum, mean, min, max, period FROM energy_statistics")
        for row_id, entity_id, start_time, state, total, mean, low, high, period in cursor:
            try:
                if not entity_id or not isinstance(entity_id, str):
                    raise ValueError("entity_id is empty")
                start = parse_start_time(start_time)
            except ValueError as exc:
                scan.rejected.append((RejectedRow(row_id, entity_id, _text(start_time), str(exc)), None))
                continue
            period = period or "hour"
            if period != "hour":
                scan.other_periods.append((entity_id, start, period))
                continue
            try:
                if start.minute or start.second or start.microsecond:
                    raise ValueError(f"start_time {start_time!r} is not the start of an hour")
                values = (_number(total, "sum"), _number(state, "state"), _number(mean, "mean"),
                          _number(low, "min"), _number(high, "max"))
                if values[0] is None:
                    raise ValueError("sum is missing: consumption cannot be derived")
            except ValueError as exc:
                scan.rejected.append((RejectedRow(row_id, entity_id, _text(start_time), str(exc)), start))
                continue
            key = (entity_id, start)
            previous = hourly.get(key)
            if previous is not None:
                scan.duplicates.append(key)
                if previous[0] > row_id:
                    continue
            hourly[key] = (row_id, values)
        by_entity: dict[str, list[tuple[datetime, tuple]]] = defaultdict(list)
        for (entity_id, start), (_, values) in hourly.items():
            by_entity[entity_id].append((start, values))
        for entity_id in sorted(by_entity):
            previous_sum: float | None = None
            for start, (total, state, mean, low, high) in sorted(by_entity[entity_id], key=lambda x: x[0]):
                change = None if previous_sum is None else total - previous_sum
                scan.hourly.append(StatisticRow(ts=start, entity_id=entity_id, change=change, sum=total,
                                                state=state, mean=mean, min=low, max=high, source="legacy"))
                previous_sum = total
        return scan


def _text(value: object) -> str | None:
    return None if value is None else str(value)
