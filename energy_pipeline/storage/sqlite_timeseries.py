"""Embedded time-series backend: one SQLite file in WAL mode, shared by every Dagster process and the API.

Why it is built this way:

* WAL mode lets readers run while one writer commits; ``busy_timeout`` makes a second writer wait
  for the lock instead of failing with "database is locked"; writes open ``BEGIN IMMEDIATE`` so a
  transaction never has to upgrade a read lock (an upgrade that cannot wait on the busy handler).
* One connection per thread and per process: a connection is never shared across ``fork`` (Dagster's
  multiprocess executor forks), so a child that inherits the store opens its own.
* Timestamps are INTEGER epoch microseconds (UTC): exact, sortable, and cheap to range-scan on the
  ``(entity_id, ts)`` primary key.
* Calendar aggregation takes its bucket boundaries from :mod:`energy_pipeline.storage.buckets`, the
  same function the QuestDB backend checks against, so both give identical buckets.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from itertools import pairwise
from operator import itemgetter
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from energy_pipeline.storage.buckets import (
    Period,
    bucket_boundaries,
    ensure_utc,
    micros_to_utc,
    utc_to_micros,
)
from energy_pipeline.storage.timeseries import (
    ConsumptionBucket,
    DailySummary,
    DuplicateKey,
    Reading,
    StatisticRow,
    StoreError,
    StoreUnavailableError,
    TimeSeriesStore,
    last_wins,
    validate_daily_summary,
    validate_reading,
    validate_statistic,
)

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 30_000
# Rows per write transaction: long enough to amortise the commit, short enough that another
# process waiting for the write lock is not held up for more than a fraction of a second.
WRITE_CHUNK_ROWS = 25_000

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS energy_statistics (
        ts INTEGER NOT NULL, entity_id TEXT NOT NULL, change REAL, sum REAL, state REAL, mean REAL,
        min REAL, max REAL, source TEXT NOT NULL DEFAULT 'ha', PRIMARY KEY (entity_id, ts)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS energy_statistics_ts ON energy_statistics (ts)",
    """CREATE TABLE IF NOT EXISTS energy_readings (
        ts INTEGER NOT NULL, entity_id TEXT NOT NULL, value REAL NOT NULL,
        PRIMARY KEY (entity_id, ts)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS energy_readings_ts ON energy_readings (ts)",
    """CREATE TABLE IF NOT EXISTS energy_daily_summary (
        ts INTEGER NOT NULL, entity_id TEXT NOT NULL, day TEXT NOT NULL, consumption REAL NOT NULL,
        min_hourly REAL, max_hourly REAL, hours_present INTEGER NOT NULL, hours_expected INTEGER NOT NULL,
        time_zone TEXT NOT NULL, PRIMARY KEY (entity_id, ts)) WITHOUT ROWID""",
)

UPSERT_STATISTICS = """INSERT INTO energy_statistics
  (ts, entity_id, change, sum, state, mean, min, max, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (entity_id, ts) DO UPDATE SET change = excluded.change, sum = excluded.sum,
  state = excluded.state, mean = excluded.mean, min = excluded.min, max = excluded.max,
  source = excluded.source"""

UPSERT_READINGS = """INSERT INTO energy_readings (ts, entity_id, value) VALUES (?, ?, ?)
ON CONFLICT (entity_id, ts) DO UPDATE SET value = excluded.value"""

UPSERT_DAILY = """INSERT INTO energy_daily_summary (ts, entity_id, day, consumption, min_hourly, max_hourly,
  hours_present, hours_expected, time_zone) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (entity_id, ts) DO UPDATE SET day = excluded.day, consumption = excluded.consumption,
  min_hourly = excluded.min_hourly, max_hourly = excluded.max_hourly,
  hours_present = excluded.hours_present, hours_expected = excluded.hours_expected,
  time_zone = excluded.time_zone"""

# Entity filters take one JSON array parameter, so a list of any length is a single bind value.
_ENTITY_FILTER = " AND entity_id IN (SELECT value FROM json_each(?))"

# Buckets ([start, end) pairs) and entities arrive as JSON arrays, so any number is one bind value.
# Each (entity, bucket) pair is one range scan of the (entity_id, ts) primary key; the CTEs are
# MATERIALIZED so each JSON array is decoded once and each scan runs once (~20 ms for a year of
# days x 10 entities, where a GROUP BY over the joined rows needs a temp b-tree and takes 3x longer).
AGGREGATE_SQL = """WITH bounds AS MATERIALIZED (
    SELECT CAST(json_extract(value, '$[0]') AS INTEGER) AS start,
           CAST(json_extract(value, '$[1]') AS INTEGER) AS end
    FROM json_each(:buckets)),
  entities AS MATERIALIZED (SELECT DISTINCT value AS entity_id FROM json_each(:entities)),
  totals AS MATERIALIZED (
    SELECT b.start AS start, b.end AS end, e.entity_id AS entity_id,
      (SELECT SUM(s.change) FROM energy_statistics AS s WHERE s.entity_id = e.entity_id
         AND s.ts >= max(b.start, :start) AND s.ts < min(b.end, :end)) AS consumption,
      (SELECT COUNT(s.change) FROM energy_statistics AS s WHERE s.entity_id = e.entity_id
         AND s.ts >= max(b.start, :start) AND s.ts < min(b.end, :end)) AS hours
    FROM entities AS e CROSS JOIN bounds AS b)
SELECT start, end, entity_id, consumption, hours FROM totals WHERE hours > 0 ORDER BY entity_id, start"""

# Connections left behind by a fork: closing them in the child could disturb the parent's file
# locks and WAL index, so the child keeps a reference and never closes or reuses them.
_ABANDONED: list[sqlite3.Connection] = []

_KEY = itemgetter(0, 1)  # (ts micros, entity_id) of a row tuple


def _entities_json(entity_ids: Sequence[str]) -> str:
    if isinstance(entity_ids, str):
        raise TypeError("entity_ids must be a sequence of ids, not one string")
    return json.dumps(list(entity_ids))


class SQLiteTimeSeriesStore(TimeSeriesStore):
    """Time series in one SQLite file; safe for several processes writing and reading at once."""

    backend = "sqlite"

    def __init__(self, path: Path | str, busy_timeout_ms: int = BUSY_TIMEOUT_MS):
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._schema_pid: int | None = None
        self._schema_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SQLiteTimeSeriesStore({str(self.path)!r})"

    # -- connections --
    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailableError(
                f"SQLite store {self.path}: cannot create its directory {self.path.parent}: {exc}; "
                "check ENERGY_PIPELINE_HOME points at a writable directory") from exc
        try:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout_ms / 1000, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._error(exc, "open") from exc
        try:
            # busy_timeout first: switching to WAL needs a lock another process may hold right now.
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"SQLite store {self.path}: could not switch to WAL mode (got {mode!r}); "
                                 "put the file on a local disk, not a network share")
            conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.Error):
                raise self._error(exc, "open") from exc
            raise
        return conn

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection in this process (a forked child opens its own)."""
        local = self._local
        pid = os.getpid()
        conn = getattr(local, "conn", None)
        if conn is not None and local.pid != pid:
            _ABANDONED.append(conn)
            conn = None
        if conn is None:
            conn = self._connect()
            local.conn, local.pid = conn, pid
        if self._schema_pid != pid:
            with self._schema_lock:
                if self._schema_pid != pid:
                    self._create_schema(conn)
                    self._schema_pid = pid
        return conn

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        with self._transaction(conn, "create the schema"):
            for statement in SCHEMA:
                conn.execute(statement)

    def ensure_schema(self) -> None:
        self._conn()

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            if self._local.pid == os.getpid():
                conn.close()
            else:
                _ABANDONED.append(conn)
            self._local.conn = None

    def health(self) -> None:
        try:
            self._conn().execute("SELECT 1").fetchone()
        except StoreError as exc:
            raise StoreUnavailableError(str(exc)) from exc
        except sqlite3.Error as exc:
            raise StoreUnavailableError(
                f"SQLite time-series store {self.path} does not answer: {exc}. "
                "Check that the file and its directory exist and are readable and writable.") from exc

    def _error(self, exc: sqlite3.Error, action: str) -> StoreError:
        text = str(exc)
        if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
            return StoreUnavailableError(
                f"SQLite store {self.path}: could not {action}: {text} after waiting "
                f"{self.busy_timeout_ms / 1000:g} s for another process; retry later")
        if isinstance(exc, sqlite3.OperationalError) and "unable to open" in text:
            return StoreUnavailableError(
                f"SQLite store {self.path}: could not {action}: {text}; "
                "check that the directory exists and is writable")
        return StoreError(f"SQLite store {self.path}: could not {action}: {text}")

    @contextmanager
    def _transaction(self, conn: sqlite3.Connection, action: str) -> Iterator[None]:
        """A short write transaction; IMMEDIATE takes the write lock up front (waiting on busy_timeout)."""
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._error(exc, action) from exc
        try:
            yield
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise self._error(exc, action) from exc
            raise
        else:
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise self._error(exc, action) from exc

    def _query(self, sql: str, params: Sequence[Any] | dict[str, Any], action: str) -> list[tuple]:
        conn = self._conn()
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._error(exc, action) from exc

    def _write(self, sql: str, rows: list[tuple], action: str) -> None:
        conn = self._conn()
        for offset in range(0, len(rows), WRITE_CHUNK_ROWS):
            with self._transaction(conn, action):
                conn.executemany(sql, rows[offset:offset + WRITE_CHUNK_ROWS])

    # -- writes --
    def write_statistics(self, rows: Iterable[StatisticRow]) -> int:
        # Dedup on the (micros, entity) tuple key: hashing ints is far cheaper than aware datetimes.
        clean = last_wins(
            ((utc_to_micros(r.ts), r.entity_id, r.change, r.sum, r.state, r.mean, r.min, r.max, r.source)
             for r in map(validate_statistic, rows)),
            key=_KEY)
        if not clean:
            return 0
        self._write(UPSERT_STATISTICS, clean, "write statistics")
        return len(clean)

    def write_readings(self, rows: Iterable[Reading]) -> int:
        clean = last_wins(((utc_to_micros(r.ts), r.entity_id, r.value)
                           for r in map(validate_reading, rows) if r is not None), key=_KEY)
        if not clean:
            return 0
        self._write(UPSERT_READINGS, clean, "write readings")
        return len(clean)

    def write_daily_summaries(self, rows: Iterable[DailySummary]) -> int:
        clean = last_wins(validate_daily_summary(row) for row in rows)
        if not clean:
            return 0
        self._write(UPSERT_DAILY, [
            (utc_to_micros(r.ts), r.entity_id, r.day.isoformat(), r.consumption, r.min_hourly, r.max_hourly,
             r.hours_present, r.hours_expected, r.time_zone)
            for r in clean
        ], "write daily summaries")
        return len(clean)

    def delete_statistics(self, entity_ids: Sequence[str] | None, start: datetime, end: datetime,
                          source: str | None = None) -> int:
        sql = "DELETE FROM energy_statistics WHERE ts >= ? AND ts < ?"
        params: list[Any] = [utc_to_micros(ensure_utc(start, "start")), utc_to_micros(ensure_utc(end, "end"))]
        if entity_ids is not None:
            sql += _ENTITY_FILTER
            params.append(_entities_json(entity_ids))
        if source is not None:
            sql += " AND source = ?"
            params.append(source)
        conn = self._conn()
        with self._transaction(conn, "delete statistics"):
            return conn.execute(sql, params).rowcount

    # -- reads --
    @staticmethod
    def _range(start: datetime, end: datetime) -> list[Any]:
        return [utc_to_micros(ensure_utc(start, "start")), utc_to_micros(ensure_utc(end, "end"))]

    def _select_range(self, select: str, entity_ids: Sequence[str] | None, start: datetime, end: datetime,
                      order: str, limit: int | None = None) -> tuple[str, list[Any]]:
        """``select`` restricted to ``[start, end)`` and (optionally) some entities, ordered."""
        sql = f"{select} WHERE ts >= ? AND ts < ?"
        params = self._range(start, end)
        if entity_ids is not None:
            sql += _ENTITY_FILTER
            params.append(_entities_json(entity_ids))
        sql += f" ORDER BY {order}"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(max(int(limit), 0))
        return sql, params

    def read_statistics(self, entity_ids: Sequence[str] | None, start: datetime,
                        end: datetime) -> list[StatisticRow]:
        sql, params = self._select_range(
            "SELECT ts, entity_id, change, sum, state, mean, min, max, source FROM energy_statistics",
            entity_ids, start, end, "entity_id, ts")
        return [
            StatisticRow(ts=micros_to_utc(ts), entity_id=e, change=c, sum=s, state=st, mean=me, min=mi,
                         max=ma, source=src)
            for ts, e, c, s, st, me, mi, ma, src in self._query(sql, params, "read statistics")
        ]

    def read_readings(self, entity_ids: Sequence[str] | None, start: datetime, end: datetime,
                      limit: int | None = None) -> list[Reading]:
        sql, params = self._select_range("SELECT ts, entity_id, value FROM energy_readings", entity_ids, start,
                                         end, "ts, entity_id", limit)
        return [Reading(ts=micros_to_utc(ts), entity_id=e, value=v)
                for ts, e, v in self._query(sql, params, "read readings")]

    def read_daily_summaries(self, entity_ids: Sequence[str] | None, start: datetime,
                             end: datetime) -> list[DailySummary]:
        sql, params = self._select_range(
            "SELECT ts, entity_id, day, consumption, min_hourly, max_hourly, hours_present, hours_expected, "
            "time_zone FROM energy_daily_summary", entity_ids, start, end, "entity_id, ts")
        return [
            DailySummary(day=date.fromisoformat(day), ts=micros_to_utc(ts), entity_id=e, consumption=c,
                         min_hourly=lo, max_hourly=hi, hours_present=hp, hours_expected=he, time_zone=tz)
            for ts, e, day, c, lo, hi, hp, he, tz in self._query(sql, params, "read daily summaries")
        ]

    def _latest(self, table: str, entity_ids: Sequence[str] | None) -> dict[str, datetime]:
        sql = f"SELECT entity_id, MAX(ts) FROM {table}"
        params: list[Any] = []
        if entity_ids is not None:
            sql += " WHERE entity_id IN (SELECT value FROM json_each(?))"
            params.append(_entities_json(entity_ids))
        sql += " GROUP BY entity_id"
        return {e: micros_to_utc(ts) for e, ts in self._query(sql, params, f"read the latest {table} rows")}

    def latest_statistic_ts(self, entity_ids: Sequence[str] | None = None) -> dict[str, datetime]:
        return self._latest("energy_statistics", entity_ids)

    def latest_reading_ts(self, entity_ids: Sequence[str] | None = None) -> dict[str, datetime]:
        return self._latest("energy_readings", entity_ids)

    def count_statistics(self, entity_ids: Sequence[str] | None, start: datetime,
                         end: datetime) -> dict[str, int]:
        sql = "SELECT entity_id, COUNT(*) FROM energy_statistics WHERE ts >= ? AND ts < ?"
        params = self._range(start, end)
        if entity_ids is not None:
            sql += _ENTITY_FILTER
            params.append(_entities_json(entity_ids))
        sql += " GROUP BY entity_id"
        return dict(self._query(sql, params, "count statistics"))

    def duplicate_statistics(self, start: datetime, end: datetime) -> list[DuplicateKey]:
        # The primary key makes duplicates impossible here; the query still runs so that the check
        # would report them if the schema were ever relaxed (e.g. a file created by an older version).
        sql = ("SELECT ts, entity_id, COUNT(*) FROM energy_statistics WHERE ts >= ? AND ts < ? "
               "GROUP BY entity_id, ts HAVING COUNT(*) > 1 ORDER BY entity_id, ts")
        return [DuplicateKey(ts=micros_to_utc(ts), entity_id=e, count=n)
                for ts, e, n in self._query(sql, self._range(start, end), "look for duplicate statistics")]

    def aggregate_consumption(self, entity_ids: Sequence[str], start: datetime, end: datetime,
                              period: Period, time_zone: str) -> list[ConsumptionBucket]:
        bounds = bucket_boundaries(start, end, period, ZoneInfo(time_zone))
        if len(bounds) < 2 or not entity_ids:
            return []
        params = {
            "buckets": json.dumps([[utc_to_micros(b0), utc_to_micros(b1)] for b0, b1 in pairwise(bounds)]),
            "entities": _entities_json(entity_ids),
            "start": utc_to_micros(start),
            "end": utc_to_micros(end),
        }
        return [
            ConsumptionBucket(start=micros_to_utc(b0), end=micros_to_utc(b1), entity_id=e,
                              consumption=float(total), hours=int(n))
            for b0, b1, e, total, n in self._query(AGGREGATE_SQL, params, "aggregate consumption")
        ]
