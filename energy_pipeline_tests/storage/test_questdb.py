"""The QuestDB backend without a QuestDB: ILP captured by a local HTTP server, SQL checked by QuestDB's
own grammar (``@questdb/sql-parser``), PG-wire calls answered by a recording fake, failures simulated.

The live-server half is the conformance suite (``test_timeseries_conformance.py``), which runs the
QuestDB backend when ``QUESTDB_ADDR`` and ``QUESTDB_PG_DSN`` are set.
"""

from __future__ import annotations

import http.server
import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from energy_pipeline.storage import questdb as q
from energy_pipeline.storage.questdb import QuestDBTimeSeriesStore
from energy_pipeline.storage.timeseries import (
    ConsumptionBucket,
    DailySummary,
    DuplicateKey,
    Reading,
    StatisticRow,
    StoreError,
    StoreUnavailableError,
)
from energy_pipeline_tests.conftest import free_port

PG_PASSWORD = "pg-s3cret-pw"
ILP_PASSWORD = "ilp-s3cret-pw"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)




# --------------------------------------------------------------------------------------------------
# A local ILP/HTTP endpoint that records what the client sends
# --------------------------------------------------------------------------------------------------

@dataclass
class Capture:
    """Answers ``/settings`` with 404 (so the client falls back to text ILP v1) and records ``/write``."""

    port: int = field(default_factory=free_port)
    write_statuses: list[int] = field(default_factory=list)  # consumed in order; 204 once empty
    error_body: bytes = b""
    writes: list[tuple[int, str, bytes]] = field(default_factory=list)  # (status, path, body)
    settings_requests: int = 0
    server: http.server.ThreadingHTTPServer | None = None

    def start(self) -> Capture:
        capture = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: bytes = b"", content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path.startswith("/settings"):
                    capture.settings_requests += 1
                self._answer(404, b"")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = capture.write_statuses.pop(0) if capture.write_statuses else 204
                capture.writes.append((status, self.path, body))
                self._answer(status, b"" if status == 204 else capture.error_body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def delivered(self) -> list[str]:
        """ILP lines of the requests answered 204, in order."""
        return [line for status, _, body in self.writes if status == 204
                for line in body.decode().splitlines()]


@pytest.fixture
def capture() -> Iterator[Capture]:
    server = Capture().start()
    try:
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------------------------------
# A recording stand-in for the PG-wire connection
# --------------------------------------------------------------------------------------------------

@dataclass
class FakePG:
    """Records every (sql, params) and answers from ``answers`` (first matching regex wins)."""

    answers: list[tuple[str, Callable[[Mapping[str, Any] | None], list[tuple]]]] = field(default_factory=list)
    calls: list[tuple[str, Mapping[str, Any] | None]] = field(default_factory=list)

    def __call__(self, sql: str, params: Mapping[str, Any] | None) -> list[tuple]:
        self.calls.append((sql, dict(params) if params is not None else None))
        for pattern, answer in self.answers:
            if re.search(pattern, sql):
                return answer(params)
        if "wal_tables()" in sql:
            return [(7, 7, False)]
        return []

    def answer(self, pattern: str, rows: list[tuple]) -> None:
        self.answers.append((pattern, lambda params: rows))

    @property
    def sql(self) -> list[str]:
        return [sql for sql, _ in self.calls]

    def queries(self) -> list[tuple[str, Mapping[str, Any] | None]]:
        """Calls other than schema creation and WAL-apply polling."""
        return [(s, p) for s, p in self.calls if not s.startswith("CREATE TABLE") and "wal_tables()" not in s]


def make_store(port: int, pg: FakePG | None = None, **kwargs: Any) -> QuestDBTimeSeriesStore:
    options = {"retry_timeout_ms": 1_000, "write_attempts": 2, "retry_backoff_s": 0.05, **kwargs}
    store = QuestDBTimeSeriesStore(f"http::addr=127.0.0.1:{port};username=admin;password={ILP_PASSWORD};",
                                   f"postgresql://admin:{PG_PASSWORD}@127.0.0.1:{free_port()}/qdb", **options)
    if pg is not None:
        store._run_sql = pg  # type: ignore[method-assign]
    return store


@pytest.fixture
def pg() -> FakePG:
    return FakePG()


# --------------------------------------------------------------------------------------------------
# (a) ILP: table, symbols, columns and nanosecond timestamps, line by line
# --------------------------------------------------------------------------------------------------

def test_statistics_ilp_lines(capture: Capture, pg: FakePG) -> None:
    store = make_store(capture.port, pg)
    written = store.write_statistics([
        StatisticRow(ts=utc(2025, 1, 1, 0), entity_id="sensor.grid_import", change=1.5, sum=10.0, state=110.25,
                     source="ha"),
        StatisticRow(ts=utc(2025, 1, 1, 1), entity_id="sensor.grid_import", change=float("nan"), sum=10.0,
                     state=110.25, mean=0.5, min=0.0, max=float("inf"), source="legacy"),
        StatisticRow(ts=utc(2025, 1, 1, 0), entity_id="sensor.grid_import", change=2.0, sum=11.0, state=111.0,
                     source="ha"),  # same key as the first row: last wins, in the first row's place
    ])
    assert written == 2
    assert capture.settings_requests >= 1  # protocol detection; 404 means ILP v1 (text)
    assert [(status, path) for status, path, _ in capture.writes] == [(204, "/write?precision=n")]
    assert capture.delivered == [
        "energy_statistics,entity_id=sensor.grid_import,source=ha "
        "change=2.0,sum=11.0,state=111.0,mean=NaN,min=NaN,max=NaN,deleted=f 1735689600000000000",
        "energy_statistics,entity_id=sensor.grid_import,source=legacy "
        "change=NaN,sum=10.0,state=110.25,mean=0.5,min=0.0,max=NaN,deleted=f 1735693200000000000",
    ]
    assert int(utc(2025, 1, 1).timestamp()) == 1735689600
    # schema first, then the write, then the wait for the WAL apply job
    assert pg.sql[:3] == list(q.Tables().ddl())
    assert pg.calls[-1] == (q.WAL_STATUS_SQL, {"table": "energy_statistics"})


def test_readings_ilp_lines(capture: Capture, pg: FakePG) -> None:
    store = make_store(capture.port, pg)
    written = store.write_readings([
        Reading(ts=utc(2025, 1, 1, 0, 0, 1, 123456), entity_id="sensor.power", value=523.5),
        Reading(ts=utc(2025, 1, 1, 0, 0, 2), entity_id="sensor.power", value=float("nan")),  # skipped
        Reading(ts=datetime.fromisoformat("2025-01-01T01:00:03+01:00"), entity_id="sensor.gas", value=-1.0),
    ])
    assert written == 2
    assert capture.delivered == [
        "energy_readings,entity_id=sensor.power value=523.5 1735689601123456000",
        "energy_readings,entity_id=sensor.gas value=-1.0 1735689603000000000",
    ]


def test_daily_summary_ilp_lines(capture: Capture, pg: FakePG) -> None:
    store = make_store(capture.port, pg)
    store.write_daily_summaries([DailySummary(
        day=date(2025, 3, 30), ts=utc(2025, 3, 29, 23), entity_id="sensor.grid", consumption=23.5,
        min_hourly=0.5, max_hourly=None, hours_present=23, hours_expected=23, time_zone="Europe/Berlin")])
    assert capture.delivered == [
        "energy_daily_summary,entity_id=sensor.grid,time_zone=Europe/Berlin day=\"2025-03-30\","
        "consumption=23.5,min_hourly=0.5,max_hourly=NaN,hours_present=23i,hours_expected=23i "
        "1743289200000000000",
    ]
    assert int(utc(2025, 3, 29, 23).timestamp()) == 1743289200


def test_large_batches_go_out_in_transactional_chunks(capture: Capture, pg: FakePG) -> None:
    store = make_store(capture.port, pg, chunk_rows=4)
    rows = [StatisticRow(ts=utc(2025, 1, 1) + timedelta(hours=h), entity_id="sensor.a", change=1.0)
            for h in range(10)]
    assert store.write_statistics(rows) == 10
    assert [len(body.decode().splitlines()) for _, _, body in capture.writes] == [4, 4, 2]
    assert len(capture.delivered) == 10


def test_empty_batches_send_nothing(capture: Capture, pg: FakePG) -> None:
    store = make_store(capture.port, pg)
    assert store.write_statistics([]) == 0
    assert store.write_readings([Reading(ts=utc(2025, 1, 1), entity_id="sensor.a", value=float("inf"))]) == 0
    assert store.write_daily_summaries([]) == 0
    assert capture.writes == [] and pg.calls == []


def test_delete_writes_tombstones(capture: Capture, pg: FakePG) -> None:
    pg.answer(r"^SELECT ts, entity_id FROM energy_statistics WHERE",
              [(datetime(2025, 1, 1, 2), "sensor.a"), (datetime(2025, 1, 1, 3), "sensor.a")])
    store = make_store(capture.port, pg)
    assert store.delete_statistics(["sensor.a"], utc(2025, 1, 1, 2), utc(2025, 1, 1, 4), source="legacy") == 2
    assert pg.queries() == [(
        "SELECT ts, entity_id FROM energy_statistics WHERE ts >= %(start)s AND ts < %(end)s AND deleted = false"
        " AND entity_id IN (%(e0)s) AND source = %(source)s",
        {"start": datetime(2025, 1, 1, 2), "end": datetime(2025, 1, 1, 4), "e0": "sensor.a", "source": "legacy"},
    )]
    assert capture.delivered == [
        "energy_statistics,entity_id=sensor.a "
        "change=NaN,sum=NaN,state=NaN,mean=NaN,min=NaN,max=NaN,deleted=t 1735696800000000000",
        "energy_statistics,entity_id=sensor.a "
        "change=NaN,sum=NaN,state=NaN,mean=NaN,min=NaN,max=NaN,deleted=t 1735700400000000000",
    ]
    # nothing to delete: no write at all
    pg.answers.clear()
    assert store.delete_statistics(None, utc(2025, 1, 1), utc(2025, 1, 2)) == 0
    assert len(capture.writes) == 1


# --------------------------------------------------------------------------------------------------
# (b) The exact DDL and every query
# --------------------------------------------------------------------------------------------------

def test_exact_ddl() -> None:
    assert q.DDL_STATISTICS == (
        "CREATE TABLE IF NOT EXISTS energy_statistics (ts TIMESTAMP, entity_id SYMBOL, change DOUBLE, "
        "sum DOUBLE, state DOUBLE, mean DOUBLE, min DOUBLE, max DOUBLE, source SYMBOL, deleted BOOLEAN) "
        "TIMESTAMP(ts) PARTITION BY MONTH WAL DEDUP UPSERT KEYS(ts, entity_id)")
    assert q.DDL_READINGS == (
        "CREATE TABLE IF NOT EXISTS energy_readings (ts TIMESTAMP, entity_id SYMBOL, value DOUBLE) "
        "TIMESTAMP(ts) PARTITION BY DAY WAL DEDUP UPSERT KEYS(ts, entity_id)")
    assert q.DDL_DAILY_SUMMARY == (
        "CREATE TABLE IF NOT EXISTS energy_daily_summary (ts TIMESTAMP, entity_id SYMBOL, day VARCHAR, "
        "consumption DOUBLE, min_hourly DOUBLE, max_hourly DOUBLE, hours_present LONG, hours_expected LONG, "
        "time_zone SYMBOL) TIMESTAMP(ts) PARTITION BY YEAR WAL DEDUP UPSERT KEYS(ts, entity_id)")
    assert q.Tables.with_prefix("t1_").ddl()[0].startswith("CREATE TABLE IF NOT EXISTS t1_energy_statistics (")
    with pytest.raises(ValueError, match="unsafe"):
        q.Tables.with_prefix("x; DROP TABLE y; --")


def test_schema_is_created_once_per_process(pg: FakePG) -> None:
    store = make_store(free_port(), pg)
    store.read_statistics(None, utc(2025, 1, 1), utc(2025, 1, 2))
    store.read_statistics(None, utc(2025, 1, 1), utc(2025, 1, 2))
    assert pg.sql.count(q.DDL_STATISTICS) == 1
    store.ensure_schema()
    assert pg.sql.count(q.DDL_STATISTICS) == 2
    store.health()
    assert pg.sql[-1] == "SELECT 1"


NAIVE_START, NAIVE_END = datetime(2025, 3, 29), datetime(2025, 4, 1)
START, END = utc(2025, 3, 29), utc(2025, 4, 1)
RANGE = {"start": NAIVE_START, "end": NAIVE_END}


def test_read_queries_and_row_mapping(pg: FakePG) -> None:
    pg.answer(r"FROM energy_statistics WHERE ts >= %\(start\)s AND ts < %\(end\)s AND deleted = false AND "
              r"entity_id IN \(%\(e0\)s, %\(e1\)s\) ORDER BY", [
                  (datetime(2025, 3, 30, 1), "sensor.b", None, float("nan"), 3.0, None, None, None, "ha"),
                  (datetime(2025, 3, 30, 0), "sensor.a", 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, "legacy"),
              ])
    pg.answer(r"^SELECT ts, entity_id, value FROM energy_readings",
              [(datetime(2025, 3, 30, 0, 0, 1, 5), "sensor.a", 7.5)])
    pg.answer(r"FROM energy_daily_summary", [
        (datetime(2025, 3, 29, 23), "sensor.a", "2025-03-30", 23.0, 0.5, 2.0, 23, 23, "Europe/Berlin")])
    pg.answer(r"LATEST ON", [("sensor.a", datetime(2025, 3, 31, 21))])
    pg.answer(r"^SELECT ts, entity_id, n FROM", [(datetime(2025, 3, 30, 1), "sensor.a", 2)])
    pg.answer(r"^SELECT entity_id, count\(\) AS n FROM", [("sensor.a", 71), ("sensor.b", 0)])
    store = make_store(free_port(), pg)

    assert store.read_statistics(["sensor.a", "sensor.b"], START, END) == [
        StatisticRow(ts=utc(2025, 3, 30, 0), entity_id="sensor.a", change=1.0, sum=2.0, state=3.0, mean=4.0,
                     min=5.0, max=6.0, source="legacy"),
        StatisticRow(ts=utc(2025, 3, 30, 1), entity_id="sensor.b", change=None, sum=None, state=3.0,
                     source="ha"),
    ]
    assert store.read_readings(["sensor.a"], START, END, limit=5) == [
        Reading(ts=utc(2025, 3, 30, 0, 0, 1, 5), entity_id="sensor.a", value=7.5)]
    assert store.read_daily_summaries(None, START, END) == [DailySummary(
        day=date(2025, 3, 30), ts=utc(2025, 3, 29, 23), entity_id="sensor.a", consumption=23.0, min_hourly=0.5,
        max_hourly=2.0, hours_present=23, hours_expected=23, time_zone="Europe/Berlin")]
    assert store.latest_statistic_ts() == {"sensor.a": utc(2025, 3, 31, 21)}
    assert store.latest_reading_ts(["sensor.a", "sensor.b"]) == {"sensor.a": utc(2025, 3, 31, 21)}
    assert store.count_statistics(["sensor.a"], START, END) == {"sensor.a": 71}
    assert store.duplicate_statistics(START, END) == [
        DuplicateKey(ts=utc(2025, 3, 30, 1), entity_id="sensor.a", count=2)]
    # empty entity lists need no query at all
    calls = len(pg.calls)
    assert store.read_statistics([], START, END) == [] and store.latest_statistic_ts([]) == {}
    assert store.count_statistics([], START, END) == {} and store.read_readings([], START, END) == []
    assert len(pg.calls) == calls

    assert pg.queries() == [
        ("SELECT ts, entity_id, change, sum, state, mean, min, max, source FROM energy_statistics "
         "WHERE ts >= %(start)s AND ts < %(end)s AND deleted = false AND entity_id IN (%(e0)s, %(e1)s) "
         "ORDER BY entity_id, ts", {**RANGE, "e0": "sensor.a", "e1": "sensor.b"}),
        ("SELECT ts, entity_id, value FROM energy_readings WHERE ts >= %(start)s AND ts < %(end)s "
         "AND entity_id IN (%(e0)s) ORDER BY ts, entity_id LIMIT 5", {**RANGE, "e0": "sensor.a"}),
        ("SELECT ts, entity_id, day, consumption, min_hourly, max_hourly, hours_present, hours_expected, "
         "time_zone FROM energy_daily_summary WHERE ts >= %(start)s AND ts < %(end)s ORDER BY entity_id, ts",
         RANGE),
        ("SELECT entity_id, ts FROM energy_statistics WHERE deleted = false LATEST ON ts PARTITION BY entity_id",
         {}),
        ("SELECT entity_id, ts FROM energy_readings WHERE entity_id IN (%(e0)s, %(e1)s) "
         "LATEST ON ts PARTITION BY entity_id", {"e0": "sensor.a", "e1": "sensor.b"}),
        ("SELECT entity_id, count() AS n FROM energy_statistics WHERE ts >= %(start)s AND ts < %(end)s "
         "AND deleted = false AND entity_id IN (%(e0)s) GROUP BY entity_id", {**RANGE, "e0": "sensor.a"}),
        ("SELECT ts, entity_id, n FROM (SELECT ts, entity_id, count() AS n FROM energy_statistics "
         "WHERE ts >= %(start)s AND ts < %(end)s GROUP BY ts, entity_id) WHERE n > 1 ORDER BY entity_id, ts",
         RANGE),
    ]


def _berlin_days(entity: str) -> list[tuple]:
    """What QuestDB's documented SAMPLE BY 1d ALIGN TO CALENDAR TIME ZONE 'Europe/Berlin' returns for the
    conformance suite's spring series (change = i for hour i from 28 March 23:00Z): UTC bucket starts."""
    return [
        (datetime(2025, 3, 28, 23), entity, 276.0, 24, datetime(2025, 3, 28, 23), datetime(2025, 3, 29, 22)),
        (datetime(2025, 3, 29, 23), entity, 805.0, 23, datetime(2025, 3, 29, 23), datetime(2025, 3, 30, 21)),
        (datetime(2025, 3, 30, 22), entity, 1404.0, 24, datetime(2025, 3, 30, 22), datetime(2025, 3, 31, 21)),
    ]


def test_aggregate_day_and_week_queries(pg: FakePG) -> None:
    pg.answer(r"SAMPLE BY 1d", _berlin_days("sensor.a"))
    store = make_store(free_port(), pg)
    days = store.aggregate_consumption(["sensor.a"], utc(2025, 3, 28, 23), utc(2025, 3, 31, 22), "day",
                                       "Europe/Berlin")
    assert days == [
        ConsumptionBucket(utc(2025, 3, 28, 23), utc(2025, 3, 29, 23), "sensor.a", 276.0, 24),
        ConsumptionBucket(utc(2025, 3, 29, 23), utc(2025, 3, 30, 22), "sensor.a", 805.0, 23),
        ConsumptionBucket(utc(2025, 3, 30, 22), utc(2025, 3, 31, 22), "sensor.a", 1404.0, 24),
    ]
    weeks = store.aggregate_consumption(["sensor.a"], utc(2025, 3, 28, 23), utc(2025, 3, 31, 22), "week",
                                        "Europe/Berlin")
    assert weeks == [
        ConsumptionBucket(utc(2025, 3, 23, 23), utc(2025, 3, 30, 22), "sensor.a", 1081.0, 47),
        ConsumptionBucket(utc(2025, 3, 30, 22), utc(2025, 4, 6, 22), "sensor.a", 1404.0, 24),
    ]
    expected_sql = (
        "SELECT ts, entity_id, sum(change) AS consumption, count() AS hours, min(ts) AS first_hour, "
        "max(ts) AS last_hour FROM energy_statistics WHERE ts >= %(start)s AND ts < %(end)s AND deleted = false "
        "AND change IS NOT NULL AND entity_id IN (%(e0)s) SAMPLE BY 1d ALIGN TO CALENDAR TIME ZONE "
        "'Europe/Berlin'")
    params = {"start": datetime(2025, 3, 28, 23), "end": datetime(2025, 3, 31, 22), "e0": "sensor.a"}
    assert pg.queries() == [(expected_sql, params), (expected_sql, params)]


def test_aggregate_month_and_hour_queries(pg: FakePG) -> None:
    store = make_store(free_port(), pg)
    store.aggregate_consumption(["sensor.a", "sensor.b"], START, END, "month", "Europe/Berlin")
    store.aggregate_consumption(["sensor.a"], START, END, "hour", "Europe/Berlin")
    (month_sql, _), (hour_sql, _) = pg.queries()
    assert month_sql.endswith("AND entity_id IN (%(e0)s, %(e1)s) SAMPLE BY 1M ALIGN TO CALENDAR TIME ZONE "
                              "'Europe/Berlin'")
    assert hour_sql.endswith("AND entity_id IN (%(e0)s) SAMPLE BY 1h")
    with pytest.raises(ValueError, match="time zone"):
        q.aggregate_sql(1, "day", "Europe/Berlin'; DROP TABLE energy_statistics; --")
    with pytest.raises(ValueError, match="unknown period"):
        store.aggregate_consumption(["sensor.a"], START, END, "year", "UTC")  # type: ignore[arg-type]


def test_aggregate_refuses_buckets_that_disagree_with_the_local_calendar(pg: FakePG) -> None:
    # a "day" from 22:00Z to 21:00Z next day would straddle local midnight in Berlin in summer
    pg.answer(r"SAMPLE BY 1d", [(datetime(2025, 6, 1, 0), "sensor.a", 24.0, 24, datetime(2025, 6, 1, 0),
                                  datetime(2025, 6, 1, 23))])
    store = make_store(free_port(), pg)
    with pytest.raises(StoreError, match="crosses a local day boundary"):
        store.aggregate_consumption(["sensor.a"], utc(2025, 6, 1), utc(2025, 6, 2), "day", "Europe/Berlin")


# --------------------------------------------------------------------------------------------------
# (c) Every SQL string the backend can issue, parsed by QuestDB's own grammar
# --------------------------------------------------------------------------------------------------

def sql_literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return "'" + value.strftime("%Y-%m-%dT%H:%M:%S.%fZ") + "'"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def with_literals(sql: str, params: Mapping[str, Any] | None) -> str:
    """Replace each ``%(name)s`` with a literal (the grammar takes no bind parameters)."""
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if params is not None and name in params:
            return sql_literal(params[name])
        if name in ("start", "end"):
            return sql_literal(datetime(2025, 1, 1))
        return sql_literal(f"value_of_{name}")

    result = re.sub(r"%\((\w+)\)s", replace, sql)
    assert "%" not in result, result
    return result


def exercise_every_method(store: QuestDBTimeSeriesStore, pg: FakePG) -> None:
    pg.answer(r"^SELECT ts, entity_id FROM", [(datetime(2025, 1, 1), "sensor.a")])
    store.ensure_schema()
    store.health()
    for entities in (None, ["sensor.a"], ["sensor.a", "sensor.b", "sensor.c"]):
        store.read_statistics(entities, START, END)
        store.read_readings(entities, START, END)
        store.read_readings(entities, START, END, limit=3)
        store.read_daily_summaries(entities, START, END)
        store.latest_statistic_ts(entities)
        store.latest_reading_ts(entities)
        store.count_statistics(entities, START, END)
        store.missing_hours(entities or ["sensor.x"], START, END)
        for source in (None, "legacy"):
            store.delete_statistics(entities, START, END, source=source)
    for period in ("hour", "day", "week", "month"):
        store.aggregate_consumption(["sensor.a", "sensor.b"], START, END, period, "Europe/Berlin")
    store.duplicate_statistics(START, END)
    store.write_statistics([StatisticRow(ts=START, entity_id="sensor.a", change=1.0)])
    store.write_readings([Reading(ts=START, entity_id="sensor.a", value=1.0)])


def test_every_issued_statement_parses_with_questdb_grammar(
        capture: Capture, pg: FakePG, questdb_sql_parser: Callable[[list[str]], list[dict]]) -> None:
    store = make_store(capture.port, pg)
    exercise_every_method(store, pg)
    enumerated = [sql for _, sql in q.iter_sql_variants()]
    enumerated += [sql for _, sql in q.iter_sql_variants(q.Tables.with_prefix("t_"), "America/New_York")]

    def shape(sql: str) -> str:
        return re.sub(r"LIMIT \d+", "LIMIT n", re.sub(r"IN \((%\(e\d+\)s(, )?)+\)", "IN (…)", sql))

    # every statement the store issued has a shape the enumeration knows (up to entity count and limit)
    unknown = {sql for sql, _ in pg.calls} - set(enumerated)
    assert {shape(sql) for sql in unknown} <= {shape(sql) for sql in enumerated}
    issued = sorted({with_literals(sql, params) for sql, params in pg.calls})
    assert len(issued) >= 30
    variants = sorted({with_literals(sql, None) for sql in enumerated})

    statements = issued + variants
    results = questdb_sql_parser(statements)
    failures = [(sql, r["errors"]) for sql, r in zip(statements, results, strict=True)
                if r["errors"] or r["statements"] != 1]
    assert failures == []
    kinds = {r["type"] for r in results}
    assert {"createTable", "select"} <= kinds


def test_the_grammar_check_can_fail(questdb_sql_parser: Callable[[list[str]], list[dict]]) -> None:
    bad = [
        "SELEC ts FROM energy_statistics",
        "SELECT ts FROM energy_statistics SAMPLE BY 1d ALIGN TO CALENDAR TIME ZONE",
        "CREATE TABLE t (ts TIMESTAMP) TIMESTAMP(ts) PARTITION BY MONTH WAL DEDUP UPSERT KEYS(",
        "SELECT ts FROM energy_statistics WHERE ts >= %(start)s",  # an unreplaced bind parameter
    ]
    results = questdb_sql_parser(bad)
    assert all(r["errors"] for r in results), results
    good = questdb_sql_parser(["SELECT ts, entity_id FROM energy_readings LATEST ON ts PARTITION BY entity_id"])
    assert good[0]["errors"] == []


# --------------------------------------------------------------------------------------------------
# (d) Failures: unreachable, rejected, overloaded
# --------------------------------------------------------------------------------------------------

ROWS = [StatisticRow(ts=utc(2025, 1, 1, h), entity_id="sensor.a", change=float(h)) for h in range(3)]


def test_connection_refused_is_unavailable_and_names_the_address(pg: FakePG) -> None:
    port = free_port()  # nobody listens here
    store = make_store(port, pg, write_attempts=2)
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as raised:
        store.write_statistics(ROWS)
    message = str(raised.value)
    assert f"127.0.0.1:{port}" in message and "QUESTDB_ADDR" in message and "writing them again is safe" in message
    assert ILP_PASSWORD not in message and PG_PASSWORD not in message
    assert time.monotonic() - started < 30


def test_rows_are_delivered_once_when_the_server_comes_up(pg: FakePG) -> None:
    late = Capture()
    store = make_store(late.port, pg, write_attempts=8, retry_backoff_s=0.1)
    starter = threading.Timer(0.5, late.start)
    starter.start()
    try:
        assert store.write_statistics(ROWS) == 3
    finally:
        starter.join()
        late.stop()
    assert [status for status, _, _ in late.writes] == [204]
    assert late.delivered == [
        "energy_statistics,entity_id=sensor.a,source=ha "
        f"change={h}.0,sum=NaN,state=NaN,mean=NaN,min=NaN,max=NaN,deleted=f {1735689600 + 3600 * h}000000000"
        for h in range(3)]


def test_http_400_is_a_store_error_with_the_server_message(capture: Capture, pg: FakePG) -> None:
    capture.write_statuses = [400]
    capture.error_body = json.dumps({
        "code": "invalid", "line": 1, "errorId": "ab12-3",
        "message": "failed to parse line protocol:errors encountered on line(s):\nerror in line 1: table: "
                   "energy_statistics, column: change; cast error from protocol type: FLOAT to column type: "
                   "LONG"}).encode()
    store = make_store(capture.port, pg, write_attempts=3)
    with pytest.raises(StoreError) as raised:
        store.write_statistics(ROWS)
    assert not isinstance(raised.value, StoreUnavailableError)
    assert "cast error from protocol type: FLOAT to column type: LONG" in str(raised.value)
    assert len(capture.writes) == 1  # a data rejection is not retried


def test_http_503_then_204_is_retried_and_delivered_once(capture: Capture, pg: FakePG) -> None:
    capture.write_statuses = [503, 503]
    store = make_store(capture.port, pg, retry_timeout_ms=5_000)
    assert store.write_statistics(ROWS) == 3
    assert [status for status, _, _ in capture.writes] == [503, 503, 204]
    assert len(capture.delivered) == 3
    assert len({body for _, _, body in capture.writes}) == 1  # the same rows each time


def test_persistent_503_is_unavailable(capture: Capture, pg: FakePG) -> None:
    capture.write_statuses = [503] * 1000
    store = make_store(capture.port, pg, retry_timeout_ms=300, write_attempts=2)
    with pytest.raises(StoreUnavailableError, match=r"did not accept the energy_statistics rows"):
        store.write_statistics(ROWS)
    assert capture.delivered == []
    assert len(capture.writes) >= 2


def test_pg_wire_unreachable_is_unavailable_without_password() -> None:
    store = make_store(free_port())
    with pytest.raises(StoreUnavailableError) as raised:
        store.health()
    message = str(raised.value)
    assert store.pg_address in message and "QUESTDB_PG_DSN" in message
    assert PG_PASSWORD not in message and ILP_PASSWORD not in message and PG_PASSWORD not in repr(store)
    with pytest.raises(StoreUnavailableError):
        store.read_statistics(None, START, END)


def test_suspended_table_is_reported(capture: Capture, pg: FakePG) -> None:
    polls = iter([(5, 6, False), (5, 6, True)])
    pg.answers.append((r"wal_tables\(\)", lambda params: [next(polls)]))
    store = make_store(capture.port, pg)
    with pytest.raises(StoreError, match="RESUME WAL"):
        store.write_statistics(ROWS)


def test_waits_until_the_wal_is_applied(capture: Capture, pg: FakePG) -> None:
    polls = iter([(5, 7, False), (6, 9, False), (7, 9, False)])
    pg.answers.append((r"wal_tables\(\)", lambda params: [next(polls)]))
    store = make_store(capture.port, pg)
    store.write_statistics(ROWS)
    # target is the sequencer txn seen first (7): later commits by others are not waited for
    assert sum("wal_tables()" in sql for sql in pg.sql) == 3
