"""Generator of a previous-app ``energy.db`` (DESIGN §6) with its quirks, for tests and benchmarks.

Hourly rows rotate through the three ``start_time`` encodings (epoch ms text, ISO with offset, naive
ISO meaning UTC); a share of rows is deliberately unreadable; some rows are other periods.
"""

from __future__ import annotations

import random
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

LEGACY_SCHEMA = """
CREATE TABLE energy_statistics (id INTEGER PRIMARY KEY AUTOINCREMENT, entity_id TEXT NOT NULL,
  start_time TEXT NOT NULL, end_time TEXT, state REAL, sum REAL, mean REAL, min REAL, max REAL,
  period TEXT DEFAULT 'hour', created_at TEXT DEFAULT CURRENT_TIMESTAMP,
  UNIQUE(entity_id, start_time, period));
CREATE TABLE sync_log (id INTEGER PRIMARY KEY AUTOINCREMENT, entity_id TEXT NOT NULL,
  last_sync TEXT NOT NULL, records_synced INTEGER DEFAULT 0, created_at TEXT DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE entities (entity_id TEXT PRIMARY KEY, friendly_name TEXT, device_class TEXT,
  unit_of_measurement TEXT, is_active INTEGER DEFAULT 1, created_at TEXT DEFAULT CURRENT_TIMESTAMP,
  updated_at TEXT DEFAULT CURRENT_TIMESTAMP);
"""

PLUS_ONE = timezone(timedelta(hours=1))
BAD_KINDS = ("garbage_time", "text_sum", "not_on_hour", "null_sum")


@dataclass
class LegacyDatabaseSpec:
    """What was generated, so tests can compute the expected migration by hand."""

    path: Path
    good_hourly: dict[tuple[str, datetime], float]  # (entity, hour) -> sum
    bad_rows: int
    other_period_rows: int


def encode_start(hour: datetime, style: int) -> str:
    if style == 0:
        return str(int(hour.timestamp() * 1000))
    if style == 1:
        return hour.astimezone(PLUS_ONE).isoformat()
    return hour.strftime("%Y-%m-%d %H:%M:%S")


def make_legacy_database(path: Path, entities: list[str], start: datetime, hours: int,
                         bad_fraction: float = 0.01, day_rows: bool = True, seed: int = 7) -> LegacyDatabaseSpec:
    """Write an ``energy.db``: ``len(entities) * hours`` hourly rows from ``start`` (UTC hour)."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    conn = sqlite3.connect(path)
    conn.executescript(LEGACY_SCHEMA)
    good: dict[tuple[str, datetime], float] = {}
    rows: list[tuple] = []
    bad = other = 0
    for e_index, entity in enumerate(entities):
        total = 0.0
        for h in range(hours):
            hour = start + timedelta(hours=h)
            total = round(total + rng.uniform(0.05, 1.5), 6)
            if rng.random() < bad_fraction:
                bad += 1
                kind = BAD_KINDS[(h + e_index) % len(BAD_KINDS)]
                start_text = encode_start(hour, h % 3)
                sum_value: object = total
                if kind == "garbage_time":
                    start_text = f"not-a-time-{h}"
                elif kind == "text_sum":
                    sum_value = "n/a"
                elif kind == "not_on_hour":
                    start_text = encode_start(hour + timedelta(minutes=30), h % 3)
                else:
                    sum_value = None
                rows.append((entity, start_text, None, 1000 + total, sum_value, None, None, None, "hour"))
                continue
            good[(entity, hour)] = total
            rows.append((entity, encode_start(hour, h % 3), encode_start(hour + timedelta(hours=1), h % 3),
                         1000 + total, total, None, None, None, "hour"))
        if day_rows:
            for d in range(hours // 24):
                other += 1
                rows.append((entity, encode_start(start + timedelta(days=d), 0), None, None, None, None, None,
                             None, "day"))
    conn.executemany(
        "INSERT INTO energy_statistics (entity_id, start_time, end_time, state, sum, mean, min, max, period) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.executemany("INSERT INTO entities (entity_id, friendly_name, device_class, unit_of_measurement) "
                     "VALUES (?, ?, 'energy', 'kWh')", [(e, e.split(".")[-1].replace("_", " ")) for e in entities])
    conn.commit()
    conn.close()
    return LegacyDatabaseSpec(path=path, good_hourly=good, bad_rows=bad, other_period_rows=other)


def default_legacy_start() -> datetime:
    return datetime(2025, 1, 1, tzinfo=UTC)
