"""Production time-series backend: QuestDB. Writes over ILP/HTTP (``questdb`` client, dataframes),
reads over the PostgreSQL wire protocol (``psycopg`` 3).

Why it is built this way:

* Every table is a WAL table with ``DEDUP UPSERT KEYS(ts, entity_id)``, so a write is an upsert and
  re-running any partition leaves exactly the same rows.
* ILP/HTTP commits are asynchronous: a flush returns once the rows are in the WAL, before queries see
  them. After each write the store waits until ``wal_tables()`` shows the table applied up to the
  sequencer transaction it saw, so a read (or an asset check) right after a write sees the write.
* QuestDB has no ``DELETE``: row-level deletion is intentionally unsupported; only whole partitions can
  be dropped (too coarse: it would take other entities' and other hours' rows with it) and the
  "replace table" recipe races with concurrent writers. QuestDB's documented answer for correcting data
  is deduplication ("append newest state"), so a delete writes a *tombstone* over each deleted key: a
  row with the same ``(ts, entity_id)``, every value NULL and ``deleted = true``. Dedup replaces the old
  row with it; every read filters ``deleted = false``; a later real write replaces the tombstone. The
  ``deleted`` BOOLEAN column is the one addition to DESIGN §3's schema.
* Calendar buckets come from QuestDB's ``SAMPLE BY … ALIGN TO CALENDAR TIME ZONE`` (documented to give
  23/25-hour days across DST), but every returned bucket is re-keyed with
  :func:`energy_pipeline.storage.buckets.bucket_start` of its first and last hour, and a bucket whose
  hours fall in two local buckets is an error. So the numbers equal the SQLite backend's or the call
  fails loudly; they cannot silently disagree. Weeks are local days grouped into Monday-starting
  weeks in Python: QuestDB documents no Monday alignment for ``SAMPLE BY 1w``.
* Every SQL string the backend issues is a module constant or comes from a small builder below, and
  :func:`iter_sql_variants` enumerates them all, so a test can feed each through QuestDB's grammar.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import psycopg
from questdb import QuestDBError, QuestDBErrorCode, Sender

from energy_pipeline.storage.buckets import (
    PERIODS,
    Period,
    bucket_start,
    ensure_utc,
    next_bucket_start,
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

STATISTICS_TABLE = "energy_statistics"
READINGS_TABLE = "energy_readings"
DAILY_SUMMARY_TABLE = "energy_daily_summary"

STATISTIC_VALUES = ("change", "sum", "state", "mean", "min", "max")

# Rows per ILP/HTTP request: each chunk is flushed as one transaction (all rows of a chunk land or
# none do) and stays far below the client's 100 MiB buffer and the request timeout.
CHUNK_ROWS = 50_000

_SAFE_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SAFE_ZONE = re.compile(r"^[A-Za-z0-9_+\-/]+$")


# ---------------------------------------------------------------------------------------------------
# SQL: constants and the small builders that make every variant (bind parameters are %(name)s).
# ---------------------------------------------------------------------------------------------------

def _table(name: str) -> str:
    if not _SAFE_TABLE.match(name):
        raise ValueError(f"unsafe QuestDB table name {name!r}")
    return name


def ddl_statistics(table: str = STATISTICS_TABLE) -> str:
    return (f"CREATE TABLE IF NOT EXISTS {_table(table)} (ts TIMESTAMP, entity_id SYMBOL, change DOUBLE, "
            "sum DOUBLE, state DOUBLE, mean DOUBLE, min DOUBLE, max DOUBLE, source SYMBOL, deleted BOOLEAN) "
            "TIMESTAMP(ts) PARTITION BY MONTH WAL DEDUP UPSERT KEYS(ts, entity_id)")


def ddl_readings(table: str = READINGS_TABLE) -> str:
    return (f"CREATE TABLE IF NOT EXISTS {_table(table)} (ts TIMESTAMP, entity_id SYMBOL, value DOUBLE) "
            "TIMESTAMP(ts) PARTITION BY DAY WAL DEDUP UPSERT KEYS(ts, entity_id)")


def ddl_daily_summary(table: str = DAILY_SUMMARY_TABLE) -> str:
    return (f"CREATE TABLE IF NOT EXISTS {_table(table)} (ts TIMESTAMP, entity_id SYMBOL, day VARCHAR, "
            "consumption DOUBLE, min_hourly DOUBLE, max_hourly DOUBLE, hours_present LONG, "
            "hours_expected LONG, time_zone SYMBOL) "
            "TIMESTAMP(ts) PARTITION BY YEAR WAL DEDUP UPSERT KEYS(ts, entity_id)")


DDL_STATISTICS = ddl_statistics()
DDL_READINGS = ddl_readings()
DDL_DAILY_SUMMARY = ddl_daily_summary()

HEALTH_SQL = "SELECT 1"
WAL_STATUS_SQL = "SELECT writerTxn, sequencerTxn, suspended FROM wal_tables() WHERE name = %(table)s"

_RANGE = "ts >= %(start)s AND ts < %(end)s"


def entity_filter(n_entities: int | None) -> str:
    """`` AND entity_id IN (%(e0)s, …)`` for ``n`` entities, ``""`` for every entity (``None``)."""
    if n_entities is None:
        return ""
    if n_entities < 1:
        raise ValueError("an entity filter needs at least one entity")
    return " AND entity_id IN (" + ", ".join(f"%(e{i})s" for i in range(n_entities)) + ")"


def select_statistics_sql(n_entities: int | None, table: str = STATISTICS_TABLE) -> str:
    return (f"SELECT ts, entity_id, change, sum, state, mean, min, max, source FROM {_table(table)} "
            f"WHERE {_RANGE} AND deleted = false{entity_filter(n_entities)} ORDER BY entity_id, ts")


def select_readings_sql(n_entities: int | None, limit: int | None, table: str = READINGS_TABLE) -> str:
    sql = (f"SELECT ts, entity_id, value FROM {_table(table)} WHERE {_RANGE}{entity_filter(n_entities)} "
           "ORDER BY ts, entity_id")
    return sql if limit is None else f"{sql} LIMIT {max(int(limit), 0)}"


def select_daily_summaries_sql(n_entities: int | None, table: str = DAILY_SUMMARY_TABLE) -> str:
    return (f"SELECT ts, entity_id, day, consumption, min_hourly, max_hourly, hours_present, hours_expected, "
            f"time_zone FROM {_table(table)} WHERE {_RANGE}{entity_filter(n_entities)} ORDER BY entity_id, ts")


def latest_statistics_sql(n_entities: int | None, table: str = STATISTICS_TABLE) -> str:
    # WHERE runs before LATEST ON (documented), so a tombstoned latest hour falls back to the one before.
    return (f"SELECT entity_id, ts FROM {_table(table)} WHERE deleted = false{entity_filter(n_entities)} "
            "LATEST ON ts PARTITION BY entity_id")


def latest_readings_sql(n_entities: int | None, table: str = READINGS_TABLE) -> str:
    where = "" if n_entities is None else " WHERE" + entity_filter(n_entities).removeprefix(" AND")
    return f"SELECT entity_id, ts FROM {_table(table)}{where} LATEST ON ts PARTITION BY entity_id"


def count_statistics_sql(n_entities: int | None, table: str = STATISTICS_TABLE) -> str:
    return (f"SELECT entity_id, count() AS n FROM {_table(table)} WHERE {_RANGE} AND deleted = false"
            f"{entity_filter(n_entities)} GROUP BY entity_id")


def duplicate_statistics_sql(table: str = STATISTICS_TABLE) -> str:
    # QuestDB has no HAVING: filter the grouped counts in an outer query. Tombstones count too: this
    # looks for physical duplicate keys, which dedup must make impossible.
    return (f"SELECT ts, entity_id, n FROM (SELECT ts, entity_id, count() AS n FROM {_table(table)} "
            f"WHERE {_RANGE} GROUP BY ts, entity_id) WHERE n > 1 ORDER BY entity_id, ts")


def delete_keys_sql(n_entities: int | None, with_source: bool, table: str = STATISTICS_TABLE) -> str:
    source = " AND source = %(source)s" if with_source else ""
    return (f"SELECT ts, entity_id FROM {_table(table)} WHERE {_RANGE} AND deleted = false"
            f"{entity_filter(n_entities)}{source}")


_SAMPLE_UNITS = {"hour": "1h", "day": "1d", "month": "1M"}


def aggregate_sql(n_entities: int, period: str, time_zone: str, table: str = STATISTICS_TABLE) -> str:
    """Consumption per entity per bucket; ``period`` is hour, day or month (weeks are grouped days).

    Hours are UTC hours (``SAMPLE BY 1h``, no time zone: an hour bucket is the same hour everywhere);
    days and months align to the local calendar of ``time_zone``, which is inlined as a literal
    (validated) because QuestDB's grammar takes no bind parameter there.
    """
    if period not in _SAMPLE_UNITS:
        raise ValueError(f"SAMPLE BY period {period!r}; use one of {', '.join(_SAMPLE_UNITS)}")
    sql = (f"SELECT ts, entity_id, sum(change) AS consumption, count() AS hours, min(ts) AS first_hour, "
           f"max(ts) AS last_hour FROM {_table(table)} WHERE {_RANGE} AND deleted = false "
           f"AND change IS NOT NULL{entity_filter(n_entities)} SAMPLE BY {_SAMPLE_UNITS[period]}")
    if period != "hour":
        sql += f" ALIGN TO CALENDAR TIME ZONE '{_zone_literal(time_zone)}'"
    return sql


def _zone_literal(time_zone: str) -> str:
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {time_zone!r}; use an IANA name such as Europe/Berlin") from None
    if not _SAFE_ZONE.match(time_zone):
        raise ValueError(f"time zone {time_zone!r} has characters that cannot appear in a SQL literal")
    return time_zone


@dataclass(frozen=True)
class Tables:
    """Table names (a prefix lets tests run against a shared server without touching real data)."""

    statistics: str = STATISTICS_TABLE
    readings: str = READINGS_TABLE
    daily_summary: str = DAILY_SUMMARY_TABLE

    @classmethod
    def with_prefix(cls, prefix: str) -> Tables:
        return cls(*(_table(prefix + name) for name in (STATISTICS_TABLE, READINGS_TABLE, DAILY_SUMMARY_TABLE)))

    def ddl(self) -> tuple[str, str, str]:
        return (ddl_statistics(self.statistics), ddl_readings(self.readings),
                ddl_daily_summary(self.daily_summary))


def iter_sql_variants(tables: Tables = Tables(),
                      time_zone: str = "Europe/Berlin") -> Iterator[tuple[str, str]]:
    """Every statement shape the backend can issue, as ``(name, sql)`` with ``%(name)s`` parameters."""
    yield from zip(("ddl_statistics", "ddl_readings", "ddl_daily_summary"), tables.ddl(), strict=True)
    yield "health", HEALTH_SQL
    yield "wal_status", WAL_STATUS_SQL
    yield "duplicates", duplicate_statistics_sql(tables.statistics)
    for n in (None, 1, 3):
        yield f"select_statistics[{n}]", select_statistics_sql(n, tables.statistics)
        yield f"select_daily_summaries[{n}]", select_daily_summaries_sql(n, tables.daily_summary)
        yield f"latest_statistics[{n}]", latest_statistics_sql(n, tables.statistics)
        yield f"latest_readings[{n}]", latest_readings_sql(n, tables.readings)
        yield f"count_statistics[{n}]", count_statistics_sql(n, tables.statistics)
        for limit in (None, 10):
            yield f"select_readings[{n},{limit}]", select_readings_sql(n, limit, tables.readings)
        for with_source in (False, True):
            yield f"delete_keys[{n},{with_source}]", delete_keys_sql(n, with_source, tables.statistics)
    for n in (1, 3):
        for period in _SAMPLE_UNITS:
            yield f"aggregate[{n},{period}]", aggregate_sql(n, period, time_zone, tables.statistics)


# ---------------------------------------------------------------------------------------------------
# Addresses and secrets (never in a message or a log line)
# ---------------------------------------------------------------------------------------------------

def _conf_params(conf: str) -> dict[str, str]:
    """Parse ``proto::key=value;…`` (``;;`` escapes a semicolon inside a value)."""
    _, _, rest = conf.partition("::")
    params: dict[str, str] = {}
    for part in re.split(r"(?<!;);(?!;)", rest):
        if "=" in part:
            key, _, value = part.partition("=")
            params[key.strip()] = value.replace(";;", ";")
    return params


def _pg_params(dsn: str) -> dict[str, str]:
    try:
        return {k: str(v) for k, v in psycopg.conninfo.conninfo_to_dict(dsn).items() if v is not None}
    except Exception:  # a malformed DSN fails at connect time with its own message
        return {}


class _Redactor:
    """Replaces every secret of the two connection strings in a message."""

    def __init__(self, *secrets: str | None):
        self.secrets = sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


_SERVER_REJECTION = re.compile(r"\[id: [^\]]*code: [^\]]*line: [^\]]*\]\s*$")
_UNREACHABLE_WORDS = ("connection refused", "could not connect", "timed out", "timeout", "connection reset",
                      "broken pipe", "failed to connect", "unreachable", "dns", "resolve")

# Connections and senders inherited through fork: closing them in the child would close the parent's
# sockets, so the child keeps them referenced and never touches them.
_ABANDONED: list[Any] = []


class QuestDBTimeSeriesStore(TimeSeriesStore):
    """QuestDB time series: ILP/HTTP writes (dedup upserts), PG-wire reads, tombstone deletes."""

    backend = "questdb"

    def __init__(self, ilp_conf: str, pg_dsn: str, *, table_prefix: str = "", connect_timeout_s: float = 5.0,
                 retry_timeout_ms: int = 10_000, write_attempts: int = 3, retry_backoff_s: float = 1.0,
                 wait_for_apply: bool = True, apply_timeout_s: float = 30.0, chunk_rows: int = CHUNK_ROWS):
        if not ilp_conf or "::" not in ilp_conf:
            raise ValueError("QuestDB ILP config must look like http::addr=localhost:9000;")
        if not pg_dsn:
            raise ValueError("QuestDB reads need a PG-wire DSN, e.g. postgresql://admin:quest@localhost:8812/qdb")
        self._ilp_conf = ilp_conf
        self._pg_dsn = pg_dsn
        self.tables = Tables.with_prefix(table_prefix)
        conf = _conf_params(ilp_conf)
        pg = _pg_params(pg_dsn)
        self._conf_keys = set(conf)
        protocol = ilp_conf.partition("::")[0].strip().lower()
        self.ilp_address = f"{protocol}://{conf.get('addr', '?')}"
        # Transactions (all rows of a chunk or none) and per-request errors exist only over HTTP(S).
        self._transactional = protocol in ("http", "https")
        self.pg_address = f"{pg.get('host', 'localhost')}:{pg.get('port', '8812')}"
        self._redact = _Redactor(conf.get("password"), conf.get("token"), conf.get("token_x"),
                                 conf.get("token_y"), pg.get("password"))
        self.connect_timeout_s = connect_timeout_s
        self.retry_timeout_ms = retry_timeout_ms
        self.write_attempts = max(1, write_attempts)
        self.retry_backoff_s = retry_backoff_s
        self.wait_for_apply = wait_for_apply
        self.apply_timeout_s = apply_timeout_s
        self.chunk_rows = max(1, chunk_rows)
        self._local = threading.local()
        self._schema_pid: int | None = None
        self._schema_lock = threading.Lock()
        self._sleep: Callable[[float], None] = time.sleep

    def __repr__(self) -> str:
        return f"QuestDBTimeSeriesStore(ilp={self.ilp_address!r}, pg={self.pg_address!r})"

    # -- PG wire ----------------------------------------------------------------------------------
    def _pg_unavailable(self, detail: str) -> StoreUnavailableError:
        return StoreUnavailableError(self._redact(
            f"QuestDB PG-wire endpoint {self.pg_address} did not answer: {detail}. Check that QuestDB is "
            "running and reachable there (port 8812 by default) and that QUESTDB_PG_DSN is right."))

    def _pg_connection(self) -> Any:
        local, pid = self._local, os.getpid()
        conn = getattr(local, "pg", None)
        if conn is not None and (local.pg_pid != pid or conn.closed or conn.broken):
            if local.pg_pid != pid:
                _ABANDONED.append(conn)
            conn = None
        if conn is None:
            try:
                conn = psycopg.connect(self._pg_dsn, connect_timeout=max(1, math.ceil(self.connect_timeout_s)),
                                       autocommit=True)
            except psycopg.Error as exc:
                raise self._pg_unavailable(str(exc).strip()) from None
            local.pg, local.pg_pid = conn, pid
        return conn

    def _run_sql(self, sql: str, params: Mapping[str, Any] | None) -> list[tuple]:
        """Execute one statement over PG wire and return its rows (the single choke point for SQL)."""
        conn = self._pg_connection()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else []
        except psycopg.Error as exc:
            if conn.closed or conn.broken or isinstance(exc, psycopg.OperationalError):
                self._local.pg = None
                raise self._pg_unavailable(str(exc).strip()) from None
            raise StoreError(self._redact(f"QuestDB at {self.pg_address} refused a query: {str(exc).strip()} "
                                          f"(query: {sql})")) from None

    def _execute(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple]:
        self._ensure_schema_once()
        return self._run_sql(sql, params)

    def _ensure_schema_once(self) -> None:
        pid = os.getpid()
        if self._schema_pid == pid:
            return
        with self._schema_lock:
            if self._schema_pid != pid:
                for ddl in self.tables.ddl():
                    self._run_sql(ddl, None)
                self._schema_pid = pid

    def ensure_schema(self) -> None:
        self._schema_pid = None
        self._ensure_schema_once()

    def health(self) -> None:
        try:
            self._run_sql(HEALTH_SQL, None)
        except StoreUnavailableError:
            raise
        except StoreError as exc:
            raise StoreUnavailableError(str(exc)) from None

    def close(self) -> None:
        local = self._local
        pg, sender = getattr(local, "pg", None), getattr(local, "sender", None)
        mine = getattr(local, "pg_pid", None) == os.getpid()
        if pg is not None and mine:
            pg.close()
        elif pg is not None:
            _ABANDONED.append(pg)
        if sender is not None:
            self._drop_sender()
        local.pg = None

    # -- ILP/HTTP ---------------------------------------------------------------------------------
    def _sender(self) -> Any:
        local, pid = self._local, os.getpid()
        sender = getattr(local, "sender", None)
        if sender is not None and local.sender_pid != pid:
            _ABANDONED.append(sender)
            sender = None
        if sender is None:
            extra: dict[str, Any] = {}
            if "auto_flush" not in self._conf_keys:
                extra["auto_flush"] = False  # we flush explicitly, one transaction per chunk
            if "retry_timeout" not in self._conf_keys:
                extra["retry_timeout"] = self.retry_timeout_ms
            sender = Sender.from_conf(self._ilp_conf, **extra)
            local.sender, local.sender_pid = sender, pid
            sender.establish()
        return sender

    def _drop_sender(self) -> None:
        sender = getattr(self._local, "sender", None)
        self._local.sender = None
        if sender is None:
            return
        if self._local.sender_pid != os.getpid():
            _ABANDONED.append(sender)
            return
        try:
            sender.close(flush=False)
        except Exception:  # closing a broken sender must not hide the error that broke it
            log.debug("closing QuestDB sender failed", exc_info=True)

    def _classify(self, exc: Exception, table: str, n_rows: int) -> tuple[StoreError, bool]:
        """Map a client error to (our error, retry?): unreachable/503 retry; a data rejection does not."""
        message = self._redact(str(exc).strip())
        code = getattr(exc, "code", None)
        lowered = message.lower()
        unavailable_codes = {QuestDBErrorCode.SocketError, QuestDBErrorCode.CouldNotResolveAddr,
                             QuestDBErrorCode.ConnectTimeout}
        if code in unavailable_codes or (
                code == QuestDBErrorCode.ProtocolVersionError and any(w in lowered for w in _UNREACHABLE_WORDS)):
            return StoreUnavailableError(
                f"QuestDB ILP endpoint {self.ilp_address} is unreachable ({message}). Check that QuestDB is "
                "running, that its HTTP port (9000 by default) is reachable from here, and QUESTDB_ADDR. "
                f"The {n_rows} {table} rows were not all written; writing them again is safe (upserts)."), True
        if code == QuestDBErrorCode.ServerFlushError:
            # A data rejection (HTTP 400) carries QuestDB's JSON error, which the client renders as
            # "… [id: …, code: …, line: …]"; anything else after the client's own retries (503 while
            # starting, a proxy error, a timeout) means the server is not taking writes right now.
            if _SERVER_REJECTION.search(message) and not any(w in lowered for w in _UNREACHABLE_WORDS):
                return StoreError(f"QuestDB at {self.ilp_address} rejected the {table} rows: {message}"), False
            return StoreUnavailableError(
                f"QuestDB ILP endpoint {self.ilp_address} did not accept the {table} rows "
                f"({message}: an HTTP error without rejection details, e.g. 503 while starting or overloaded). "
                "Check the QuestDB server's health and log. "
                f"The {n_rows} rows were not all written; writing them again is safe (upserts)."), True
        if code == QuestDBErrorCode.AuthError:
            return StoreError(f"QuestDB at {self.ilp_address} refused the credentials ({message}); check the "
                              "username/password or token in QUESTDB_ADDR"), False
        if code == QuestDBErrorCode.HttpNotSupported:
            return StoreError(f"{self.ilp_address} does not serve ILP over HTTP ({message}); QUESTDB_ADDR must "
                              "point at QuestDB's HTTP port (9000 by default)"), False
        return StoreError(f"QuestDB ILP write of {table} rows to {self.ilp_address} failed: {message}"), False

    def _send_frame(self, table: str, frame: pd.DataFrame, symbols: list[str]) -> None:
        """Send ``frame`` in transactional chunks, retrying unreachable/503 with backoff; then await apply."""
        # A symbol column with no value at all (tombstones have no source) cannot be typed as strings:
        # leave it out; the rows then carry NULL there, which is what they mean.
        empty = [name for name in symbols if frame[name].isna().all()]
        if empty:
            frame = frame.drop(columns=empty)
            symbols = [name for name in symbols if name not in empty]
        offset, attempt = 0, 0
        while offset < len(frame):
            chunk = frame.iloc[offset:offset + self.chunk_rows]
            try:
                sender = self._sender()
                sender.dataframe(chunk, table_name=table, symbols=symbols, at="ts")
                sender.flush(transactional=self._transactional)
            except QuestDBError as exc:
                self._drop_sender()
                error, retry = self._classify(exc, table, len(frame) - offset)
                attempt += 1
                if not retry or attempt >= self.write_attempts:
                    raise error from None
                delay = self.retry_backoff_s * 2 ** (attempt - 1)
                log.warning("QuestDB write to %s failed (attempt %d of %d), retrying in %.1f s: %s",
                            table, attempt, self.write_attempts, delay, error)
                self._sleep(delay)
                continue
            offset += len(chunk)
            attempt = 0
        if self.wait_for_apply:
            self._await_applied(table)

    def _await_applied(self, table: str) -> None:
        """Wait until the WAL apply job has caught up with the commit we just made (read-your-writes)."""
        deadline = time.monotonic() + self.apply_timeout_s
        target: int | None = None
        delay = 0.01
        while True:
            rows = self._run_sql(WAL_STATUS_SQL, {"table": table})
            if not rows:
                return  # not a WAL table (or not visible): nothing to wait for
            writer_txn, sequencer_txn, suspended = rows[0]
            target = sequencer_txn if target is None else target
            if writer_txn >= target:
                return
            if suspended:
                raise StoreError(f"QuestDB table {table} is suspended: rows are accepted but not applied. See "
                                 f"wal_tables() and the server log, then run ALTER TABLE {table} RESUME WAL")
            if time.monotonic() > deadline:
                raise StoreError(f"QuestDB accepted rows for {table} but did not apply them within "
                                 f"{self.apply_timeout_s:g} s (writerTxn {writer_txn} < {target}); check the "
                                 "server's load and log")
            self._sleep(delay)
            delay = min(delay * 2, 0.5)

    # -- writes -----------------------------------------------------------------------------------
    def write_statistics(self, rows: Iterable[StatisticRow]) -> int:
        clean = last_wins(validate_statistic(row) for row in rows)
        if not clean:
            return 0
        self._ensure_schema_once()
        self._send_frame(self.tables.statistics, statistics_frame(clean), ["entity_id", "source"])
        return len(clean)

    def write_readings(self, rows: Iterable[Reading]) -> int:
        clean = last_wins(r for r in map(validate_reading, rows) if r is not None)
        if not clean:
            return 0
        self._ensure_schema_once()
        self._send_frame(self.tables.readings, readings_frame(clean), ["entity_id"])
        return len(clean)

    def write_daily_summaries(self, rows: Iterable[DailySummary]) -> int:
        clean = last_wins(validate_daily_summary(row) for row in rows)
        if not clean:
            return 0
        self._ensure_schema_once()
        self._send_frame(self.tables.daily_summary, daily_summary_frame(clean), ["entity_id", "time_zone"])
        return len(clean)

    def delete_statistics(self, entity_ids: Sequence[str] | None, start: datetime, end: datetime,
                          source: str | None = None) -> int:
        """Tombstone every live row in the range (see the module docstring): dedup replaces each row."""
        params = _range_params(start, end)
        if _none_selected(entity_ids):
            return 0
        params.update(_entity_params(entity_ids))
        if source is not None:
            params["source"] = source
        sql = delete_keys_sql(_count(entity_ids), source is not None, self.tables.statistics)
        keys = [(_to_utc(ts), entity) for ts, entity in self._execute(sql, params)]
        if not keys:
            return 0
        tombstones = [StatisticRow(ts=ts, entity_id=entity, change=None, source="") for ts, entity in keys]
        self._send_frame(self.tables.statistics, statistics_frame(tombstones, deleted=True),
                         ["entity_id", "source"])
        return len(keys)

    # -- reads ------------------------------------------------------------------------------------
    def read_statistics(self, entity_ids: Sequence[str] | None, start: datetime,
                        end: datetime) -> list[StatisticRow]:
        params = {**_range_params(start, end), **_entity_params(entity_ids)}
        if _none_selected(entity_ids):
            return []
        rows = self._execute(select_statistics_sql(_count(entity_ids), self.tables.statistics), params)
        out = [StatisticRow(ts=_to_utc(ts), entity_id=e, change=_num(c), sum=_num(s), state=_num(st),
                            mean=_num(me), min=_num(mi), max=_num(ma), source=src or "")
               for ts, e, c, s, st, me, mi, ma, src in rows]
        out.sort(key=lambda r: (r.entity_id, r.ts))
        return out

    def read_readings(self, entity_ids: Sequence[str] | None, start: datetime, end: datetime,
                      limit: int | None = None) -> list[Reading]:
        params = {**_range_params(start, end), **_entity_params(entity_ids)}
        if _none_selected(entity_ids):
            return []
        rows = self._execute(select_readings_sql(_count(entity_ids), limit, self.tables.readings), params)
        out = [Reading(ts=_to_utc(ts), entity_id=e, value=float(v)) for ts, e, v in rows]
        out.sort(key=lambda r: (r.ts, r.entity_id))
        return out

    def read_daily_summaries(self, entity_ids: Sequence[str] | None, start: datetime,
                             end: datetime) -> list[DailySummary]:
        params = {**_range_params(start, end), **_entity_params(entity_ids)}
        if _none_selected(entity_ids):
            return []
        rows = self._execute(select_daily_summaries_sql(_count(entity_ids), self.tables.daily_summary), params)
        out = [DailySummary(day=date.fromisoformat(day), ts=_to_utc(ts), entity_id=e, consumption=float(c),
                            min_hourly=_num(lo), max_hourly=_num(hi), hours_present=int(hp),
                            hours_expected=int(he), time_zone=tz)
               for ts, e, day, c, lo, hi, hp, he, tz in rows]
        out.sort(key=lambda r: (r.entity_id, r.ts))
        return out

    def latest_statistic_ts(self, entity_ids: Sequence[str] | None = None) -> dict[str, datetime]:
        if _none_selected(entity_ids):
            return {}
        rows = self._execute(latest_statistics_sql(_count(entity_ids), self.tables.statistics),
                             _entity_params(entity_ids))
        return {e: _to_utc(ts) for e, ts in rows}

    def latest_reading_ts(self, entity_ids: Sequence[str] | None = None) -> dict[str, datetime]:
        if _none_selected(entity_ids):
            return {}
        rows = self._execute(latest_readings_sql(_count(entity_ids), self.tables.readings),
                             _entity_params(entity_ids))
        return {e: _to_utc(ts) for e, ts in rows}

    def count_statistics(self, entity_ids: Sequence[str] | None, start: datetime,
                         end: datetime) -> dict[str, int]:
        if _none_selected(entity_ids):
            return {}
        params = {**_range_params(start, end), **_entity_params(entity_ids)}
        rows = self._execute(count_statistics_sql(_count(entity_ids), self.tables.statistics), params)
        return {e: int(n) for e, n in rows if n}

    def duplicate_statistics(self, start: datetime, end: datetime) -> list[DuplicateKey]:
        rows = self._execute(duplicate_statistics_sql(self.tables.statistics), _range_params(start, end))
        return sorted((DuplicateKey(ts=_to_utc(ts), entity_id=e, count=int(n)) for ts, e, n in rows),
                      key=lambda d: (d.entity_id, d.ts))

    def aggregate_consumption(self, entity_ids: Sequence[str], start: datetime, end: datetime,
                              period: Period, time_zone: str) -> list[ConsumptionBucket]:
        if period not in PERIODS:
            raise ValueError(f"unknown period {period!r}; use one of {', '.join(PERIODS)}")
        tz = ZoneInfo(time_zone)
        start, end = ensure_utc(start, "start"), ensure_utc(end, "end")
        if end <= start or not entity_ids:
            return []
        sample_period = "day" if period == "week" else period
        sql = aggregate_sql(len(entity_ids), sample_period, time_zone, self.tables.statistics)
        params = {**_range_params(start, end), **_entity_params(entity_ids)}
        return rekey_buckets(self._execute(sql, params), period, tz)


def rekey_buckets(rows: Iterable[tuple], period: Period, tz: ZoneInfo) -> list[ConsumptionBucket]:
    """Turn SAMPLE BY rows ``(ts, entity, consumption, hours, first_hour, last_hour)`` into local buckets.

    Each row is placed by ``bucket_start`` of its first hour; a row whose last hour lies in another
    local bucket means QuestDB's alignment disagrees with the local calendar, which is an error, not a
    number to return. Rows landing in the same local bucket (e.g. the days of a week) are summed.
    """
    totals: dict[tuple[str, datetime], list[float]] = {}
    for _ts, entity, consumption, hours, first_hour, last_hour in rows:
        first, last = _to_utc(first_hour), _to_utc(last_hour)
        start = bucket_start(first, period, tz)
        if bucket_start(last, period, tz) != start:
            raise StoreError(
                f"QuestDB's SAMPLE BY bucket for {entity} spans {first.isoformat()} to {last.isoformat()}, "
                f"which crosses a local {period} boundary in {tz.key}; its calendar alignment disagrees with "
                "the local calendar (check the QuestDB version's SAMPLE BY … TIME ZONE behaviour)")
        total = totals.setdefault((entity, start), [0.0, 0])
        total[0] += float(consumption or 0.0)
        total[1] += int(hours)
    return [
        ConsumptionBucket(start=start, end=next_bucket_start(start, period, tz), entity_id=entity,
                          consumption=consumption, hours=int(hours))
        for (entity, start), (consumption, hours) in sorted(totals.items())
        if hours
    ]


# ---------------------------------------------------------------------------------------------------
# Row <-> frame / parameter helpers
# ---------------------------------------------------------------------------------------------------

def _none_selected(entity_ids: Sequence[str] | None) -> bool:
    """An empty list selects no entity (``None`` selects every entity)."""
    return entity_ids is not None and len(entity_ids) == 0


def _count(entity_ids: Sequence[str] | None) -> int | None:
    if entity_ids is None:
        return None
    if isinstance(entity_ids, str):
        raise TypeError("entity_ids must be a sequence of ids, not one string")
    return len(entity_ids)


def _entity_params(entity_ids: Sequence[str] | None) -> dict[str, Any]:
    if entity_ids is None:
        return {}
    if isinstance(entity_ids, str):
        raise TypeError("entity_ids must be a sequence of ids, not one string")
    return {f"e{i}": entity for i, entity in enumerate(entity_ids)}


def _naive_utc(value: datetime, name: str) -> datetime:
    """Bind timestamps as naive UTC: psycopg sends them as TIMESTAMP, QuestDB's own (UTC) type."""
    return ensure_utc(value, name).replace(tzinfo=None)


def _range_params(start: datetime, end: datetime) -> dict[str, Any]:
    return {"start": _naive_utc(start, "start"), "end": _naive_utc(end, "end")}


def _to_utc(value: datetime) -> datetime:
    """QuestDB returns TIMESTAMP (no zone) holding UTC; attach UTC (or convert an aware value)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _num(value: Any) -> float | None:
    """QuestDB's NULL double may arrive as None or NaN; both are 'no measurement'."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _ts_column(values: Iterable[datetime]) -> np.ndarray:
    # Naive datetime64[ns] (UTC): the client's numpy path, no pyarrow needed; ILP sends nanoseconds.
    return np.array([utc_to_micros(v) for v in values], dtype="datetime64[us]").astype("datetime64[ns]")


def _float_column(values: Iterable[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _str_column(values: Iterable[str | None]) -> pd.Series:
    return pd.Series([v or None for v in values], dtype=object)


def statistics_frame(rows: Sequence[StatisticRow], deleted: bool = False) -> pd.DataFrame:
    """The ILP frame for ``energy_statistics``; NULL values go out as NaN (QuestDB's NULL double)."""
    frame: dict[str, Any] = {
        "entity_id": _str_column(r.entity_id for r in rows),
        "source": _str_column(r.source for r in rows),
    }
    for name in STATISTIC_VALUES:
        frame[name] = _float_column(getattr(r, name) for r in rows)
    frame["deleted"] = np.full(len(rows), deleted, dtype=bool)
    frame["ts"] = _ts_column(r.ts for r in rows)
    return pd.DataFrame(frame)


def readings_frame(rows: Sequence[Reading]) -> pd.DataFrame:
    return pd.DataFrame({
        "entity_id": _str_column(r.entity_id for r in rows),
        "value": _float_column(r.value for r in rows),
        "ts": _ts_column(r.ts for r in rows),
    })


def daily_summary_frame(rows: Sequence[DailySummary]) -> pd.DataFrame:
    return pd.DataFrame({
        "entity_id": _str_column(r.entity_id for r in rows),
        "time_zone": _str_column(r.time_zone for r in rows),
        "day": pd.Series([r.day.isoformat() for r in rows], dtype=object),
        "consumption": _float_column(r.consumption for r in rows),
        "min_hourly": _float_column(r.min_hourly for r in rows),
        "max_hourly": _float_column(r.max_hourly for r in rows),
        "hours_present": np.array([r.hours_present for r in rows], dtype=np.int64),
        "hours_expected": np.array([r.hours_expected for r in rows], dtype=np.int64),
        "ts": _ts_column(r.ts for r in rows),
    })
