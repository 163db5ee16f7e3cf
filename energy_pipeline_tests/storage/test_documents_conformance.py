"""One conformance suite for every document-store backend that is reachable.

Backends: embedded SQLite (always); MongoDB wire protocol served by secantusdb (always: started as a
separate process by the ``secantus_server`` fixture); a real MongoDB when ``MONGODB_URI`` is set.
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from energy_pipeline.storage.documents import SYNC_LOG_RETENTION, DocumentStore, EntityRecord, SyncLogEntry
from energy_pipeline.storage.mongo import TTL_INDEX_NAME, MongoDocumentStore
from energy_pipeline.storage.sqlite_documents import SQLiteDocumentStore

MONGO_BACKENDS = ["secantusdb", "mongodb"]
BACKENDS = ["sqlite", *MONGO_BACKENDS]
PARIS_SUMMER = timezone(timedelta(hours=2))


def _ms(value: datetime) -> datetime:
    """What every backend keeps of a datetime: UTC, millisecond precision (BSON's)."""
    return value.astimezone(UTC).replace(microsecond=value.microsecond // 1000 * 1000)


def _open(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> DocumentStore:
    if kind == "sqlite":
        # A missing parent directory is part of the contract: the store creates it.
        return SQLiteDocumentStore(tmp_path / "nested" / "home" / "documents.sqlite3")
    if kind == "secantusdb":
        uri = request.getfixturevalue("secantus_server").uri
    else:
        uri = os.environ.get("MONGODB_URI", "")
        if not uri:
            pytest.skip("MONGODB_URI is not set: no real MongoDB to run against "
                        "(the secantusdb backend still covers the MongoDB code)")
    return MongoDocumentStore(uri, database=f"ep_test_{uuid.uuid4().hex[:12]}")


def _opened(store: DocumentStore) -> Iterator[DocumentStore]:
    store.ensure_schema()
    try:
        yield store
    finally:
        if isinstance(store, MongoDocumentStore):
            db = store._db()
            db.client.drop_database(db.name)
        store.close()


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DocumentStore]:
    yield from _opened(_open(request.param, request, tmp_path))


@pytest.fixture(params=MONGO_BACKENDS)
def mongo_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MongoDocumentStore]:
    store = _open(request.param, request, tmp_path)
    assert isinstance(store, MongoDocumentStore)
    yield from _opened(store)  # type: ignore[misc]


def _entity(entity_id: str, **kwargs) -> EntityRecord:
    return EntityRecord(entity_id=entity_id, **kwargs)


# -- basics ------------------------------------------------------------------------------------------------

def test_health_and_idempotent_schema(store: DocumentStore) -> None:
    store.health()
    store.ensure_schema()
    store.ensure_schema()
    assert store.get_settings() == {}
    assert store.get_stream_state() == {}
    assert store.latest_check_results() == {}
    assert store.list_entities() == []
    assert store.list_sync_log() == []


# -- settings ----------------------------------------------------------------------------------------------

def test_settings_merge_and_remove(store: DocumentStore) -> None:
    saved_at = datetime(2026, 7, 1, 12, 30, 15, 123456, tzinfo=PARIS_SUMMER)
    doc = store.update_settings({"ha_url": "http://ha.local:8123", "tariff": {"price": 0.25, "tiers": [1, 2]},
                                 "saved_at": saved_at})
    assert doc == {"ha_url": "http://ha.local:8123", "tariff": {"price": 0.25, "tiers": [1, 2]},
                   "saved_at": _ms(saved_at)}

    doc = store.update_settings({"time_zone": "Europe/Paris", "ha_url": None, "not_there": None})
    assert doc == {"tariff": {"price": 0.25, "tiers": [1, 2]}, "time_zone": "Europe/Paris",
                   "saved_at": _ms(saved_at)}
    assert store.get_settings() == doc
    assert store.get_settings()["saved_at"].tzinfo is not None
    assert store.get_settings()["saved_at"].utcoffset() == timedelta(0)

    # A nested dict is replaced as a whole, not merged.
    assert store.update_settings({"tariff": {"price": 0.3}})["tariff"] == {"price": 0.3}
    assert store.update_settings({}) == store.get_settings()


@pytest.mark.parametrize("bad_key", ["a.b", "$set", "_id", ""])
def test_settings_refuse_path_like_keys(store: DocumentStore, bad_key: str) -> None:
    with pytest.raises(ValueError):
        store.update_settings({bad_key: 1})


def test_naive_datetimes_are_refused(store: DocumentStore) -> None:
    naive = datetime(2026, 1, 1, 12, 0)
    with pytest.raises(ValueError, match="time zone"):
        store.update_settings({"saved_at": naive})
    with pytest.raises(ValueError, match="time zone"):
        store.update_stream_state({"last_event_at": naive})
    with pytest.raises(ValueError, match="time zone"):
        store.append_sync_log(SyncLogEntry(kind="statistics", status="success", created_at=naive))
    assert store.get_settings() == {}
    assert store.get_stream_state() == {}


# -- entities ----------------------------------------------------------------------------------------------

def test_entity_upsert_keeps_users_tracked_flag(store: DocumentStore) -> None:
    first = [
        _entity("sensor.grid_import", name="Grid import", unit="kWh", role="grid_import", source="recorder"),
        _entity("sensor.solar", name="Solar", unit="kWh", role="solar", tracked=False),
    ]
    assert store.upsert_entities(first) == (2, 0)
    before = store.get_entity("sensor.grid_import")
    assert before is not None and before.tracked is True
    assert before.created_at is not None and before.created_at.utcoffset() == timedelta(0)
    assert before.updated_at is not None and before.updated_at.utcoffset() == timedelta(0)

    changed = store.set_tracked("sensor.grid_import", False)
    assert changed is not None and changed.tracked is False
    assert store.set_tracked("sensor.solar", True).tracked is True  # type: ignore[union-attr]

    # Re-discovery says tracked=True / False again: the user's choice wins for known entities.
    rediscovered = [
        _entity("sensor.grid_import", name="Grid import (renamed)", unit="Wh", role="grid_import",
                source="recorder", has_sum=False, tracked=True),
        _entity("sensor.solar", name="Solar", unit="kWh", role="solar", tracked=False),
        _entity("sensor.gas", name="Gas", unit="m³", role="gas", tracked=False),
    ]
    assert store.upsert_entities(rediscovered) == (1, 2)
    after = store.get_entity("sensor.grid_import")
    assert after is not None
    assert after.tracked is False
    assert (after.name, after.unit, after.role, after.source, after.has_sum) == (
        "Grid import (renamed)", "Wh", "grid_import", "recorder", False)
    assert after.created_at == before.created_at
    assert after.updated_at >= before.updated_at  # type: ignore[operator]
    assert store.get_entity("sensor.solar").tracked is True  # type: ignore[union-attr]
    assert store.get_entity("sensor.gas").tracked is False  # type: ignore[union-attr]
    assert store.upsert_entities([]) == (0, 0)


def test_entity_created_at_from_record_is_kept(store: DocumentStore) -> None:
    created = datetime(2025, 3, 1, 8, 0, 0, 250000, tzinfo=PARIS_SUMMER)
    store.upsert_entities([_entity("sensor.water", role="water", created_at=created)])
    assert store.get_entity("sensor.water").created_at == _ms(created)  # type: ignore[union-attr]


def test_list_entities_filters_and_order(store: DocumentStore) -> None:
    store.upsert_entities([
        _entity("sensor.z_device", role="device"),
        _entity("sensor.a_device", role="device", tracked=False),
        _entity("sensor.m_import", role="grid_import"),
        _entity("sensor.unknown_role"),
    ])
    ids = lambda records: [r.entity_id for r in records]  # noqa: E731
    assert ids(store.list_entities()) == ["sensor.a_device", "sensor.m_import", "sensor.unknown_role",
                                          "sensor.z_device"]
    assert ids(store.list_entities(role="device")) == ["sensor.a_device", "sensor.z_device"]
    assert ids(store.list_entities(tracked=True)) == ["sensor.m_import", "sensor.unknown_role",
                                                      "sensor.z_device"]
    assert ids(store.list_entities(tracked=False)) == ["sensor.a_device"]
    assert ids(store.list_entities(role="device", tracked=True)) == ["sensor.z_device"]
    assert store.list_entities(role="solar") == []
    assert store.get_entity("sensor.unknown_role").role is None  # type: ignore[union-attr]


def test_unknown_entity(store: DocumentStore) -> None:
    assert store.set_tracked("sensor.nope", True) is None
    assert store.get_entity("sensor.nope") is None
    assert store.list_entities() == []  # set_tracked did not create it


def test_bad_role_is_refused(store: DocumentStore) -> None:
    with pytest.raises(ValueError, match="role"):
        store.upsert_entities([_entity("sensor.x", role="nuclear")])
    assert store.list_entities() == []


# -- stream state ------------------------------------------------------------------------------------------

def test_stream_state_set_and_increment(store: DocumentStore) -> None:
    since = datetime(2026, 7, 1, 10, 0, 0, 5000, tzinfo=PARIS_SUMMER)
    store.update_stream_state({"status": "streaming", "connected_since": since},
                              {"events_total": 5, "reconnects": 1})
    store.update_stream_state({"last_error": None}, {"events_total": 7})
    store.update_stream_state({}, {"reconnects": 2, "events_written": 3})
    store.update_stream_state({})
    state = store.get_stream_state()
    assert state == {"status": "streaming", "connected_since": _ms(since), "last_error": None,
                     "events_total": 12, "reconnects": 3, "events_written": 3}
    assert state["connected_since"].utcoffset() == timedelta(0)

    with pytest.raises(ValueError, match="both set and incremented"):
        store.update_stream_state({"events_total": 0}, {"events_total": 1})
    with pytest.raises(ValueError, match="int"):
        store.update_stream_state({}, {"events_total": 1.5})  # type: ignore[dict-item]
    assert store.get_stream_state()["events_total"] == 12


def test_stream_state_concurrent_increments_from_threads(store: DocumentStore) -> None:
    threads_n, per_thread = 6, 15
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads_n)

    def work(index: int) -> None:
        try:
            barrier.wait()
            for _ in range(per_thread):
                store.update_stream_state({"last_writer": index}, {"events_total": 1, "batches": 2})
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    state = store.get_stream_state()
    assert state["events_total"] == threads_n * per_thread
    assert state["batches"] == 2 * threads_n * per_thread
    assert state["last_writer"] in range(threads_n)


def _increment_in_child(store: DocumentStore, count: int) -> None:
    for _ in range(count):
        store.update_stream_state({}, {"events_total": 1})


def test_stream_state_concurrent_increments_from_processes(store: DocumentStore) -> None:
    """Forked children inherit the store object: each must open its own connection (pid check)."""
    store.update_stream_state({"status": "streaming"}, {"events_total": 1})  # opens the parent's connection
    context = multiprocessing.get_context("fork")
    children = [context.Process(target=_increment_in_child, args=(store, 10)) for _ in range(3)]
    for child in children:
        child.start()
    _increment_in_child(store, 10)
    for child in children:
        child.join(timeout=120)
        assert child.exitcode == 0
    assert store.get_stream_state()["events_total"] == 1 + 4 * 10


# -- check results -----------------------------------------------------------------------------------------

def test_check_results_latest_per_check(store: DocumentStore) -> None:
    at = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
    store.record_check_result("no_missing_hours", {"passed": False, "missing": 3, "checked_at": at})
    store.record_check_result("no_duplicates", {"passed": True, "details": {"rows": [1, 2]}})
    store.record_check_result("no_missing_hours", {"passed": True, "missing": 0,
                                                   "checked_at": at + timedelta(hours=1)})
    assert store.latest_check_results() == {
        "no_duplicates": {"passed": True, "details": {"rows": [1, 2]}},
        "no_missing_hours": {"passed": True, "missing": 0, "checked_at": at + timedelta(hours=1)},
    }


# -- sync log ----------------------------------------------------------------------------------------------

def test_sync_log_newest_first_limit_and_filters(store: DocumentStore) -> None:
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    for hour in range(6):
        store.append_sync_log(SyncLogEntry(
            kind="statistics" if hour % 2 == 0 else "migration", status="success",
            created_at=base + timedelta(hours=hour), entity_id=f"sensor.e{hour % 3}", run_id=f"run-{hour}",
            partition=f"2026-07-01-{hour:02d}:00", rows_written=hour * 10, message=f"hour {hour}",
            details={"hour": hour, "at": base + timedelta(hours=hour)},
        ))
    entries = store.list_sync_log()
    assert [e.run_id for e in entries] == [f"run-{h}" for h in range(5, -1, -1)]
    newest = entries[0]
    assert newest == SyncLogEntry(kind="migration", status="success", created_at=base + timedelta(hours=5),
                                  entity_id="sensor.e2", run_id="run-5", partition="2026-07-01-05:00",
                                  rows_written=50, message="hour 5",
                                  details={"hour": 5, "at": base + timedelta(hours=5)})
    assert newest.created_at.utcoffset() == timedelta(0)

    assert [e.run_id for e in store.list_sync_log(limit=2)] == ["run-5", "run-4"]
    assert store.list_sync_log(limit=0) == []
    assert [e.run_id for e in store.list_sync_log(entity_id="sensor.e1")] == ["run-4", "run-1"]
    assert [e.run_id for e in store.list_sync_log(kind="statistics")] == ["run-4", "run-2", "run-0"]
    assert [e.run_id for e in store.list_sync_log(kind="statistics", entity_id="sensor.e1", limit=1)] == [
        "run-4"]
    assert store.list_sync_log(entity_id="sensor.none") == []


def test_sync_log_same_timestamp_keeps_insertion_order(store: DocumentStore) -> None:
    at = datetime.now(UTC).replace(microsecond=0)
    for index in range(3):
        store.append_sync_log(SyncLogEntry(kind="discovery", status="success", created_at=at,
                                           message=str(index)))
    assert [e.message for e in store.list_sync_log()] == ["2", "1", "0"]


def test_sync_log_entries_older_than_retention_are_not_returned(store: DocumentStore) -> None:
    now = datetime.now(UTC)
    store.append_sync_log(SyncLogEntry(kind="statistics", status="success", message="recent",
                                       created_at=now - SYNC_LOG_RETENTION + timedelta(hours=1)))
    store.append_sync_log(SyncLogEntry(kind="statistics", status="failure", message="old",
                                       created_at=now - SYNC_LOG_RETENTION - timedelta(days=1)))
    assert [e.message for e in store.list_sync_log()] == ["recent"]
    assert [e.message for e in store.list_sync_log(kind="statistics")] == ["recent"]


# -- backend specifics -------------------------------------------------------------------------------------

def test_mongo_sync_log_has_ttl_index(mongo_store: MongoDocumentStore) -> None:
    store = mongo_store
    indexes = {index["name"]: index for index in store._db().sync_log.list_indexes()}
    ttl = indexes[TTL_INDEX_NAME]
    assert dict(ttl["key"]) == {"created_at": 1}
    assert ttl["expireAfterSeconds"] == int(SYNC_LOG_RETENTION.total_seconds())
    assert dict(indexes["entity_id_1_created_at_-1"]["key"]) == {"entity_id": 1, "created_at": -1}
    entity_keys = [dict(i["key"]) for i in store._db().entities.list_indexes()]
    assert {"role": 1} in entity_keys and {"tracked": 1} in entity_keys


def test_mongo_ttl_expiry_change_is_applied(mongo_store: MongoDocumentStore) -> None:
    """A TTL index created with another expiry (older retention) is adjusted, not a start-up error."""
    store = mongo_store
    db = store._db()
    db.command("collMod", "sync_log", index={"name": TTL_INDEX_NAME, "expireAfterSeconds": 60})
    store.ensure_schema()
    ttl = {i["name"]: i for i in db.sync_log.list_indexes()}[TTL_INDEX_NAME]
    assert ttl["expireAfterSeconds"] == int(SYNC_LOG_RETENTION.total_seconds())


def test_sqlite_purges_old_sync_log_on_append(tmp_path: Path) -> None:
    path = tmp_path / "documents.sqlite3"
    store = SQLiteDocumentStore(path)
    now = datetime.now(UTC)
    store.append_sync_log(SyncLogEntry(kind="statistics", status="success",
                                       created_at=now - SYNC_LOG_RETENTION - timedelta(days=2)))
    store.append_sync_log(SyncLogEntry(kind="statistics", status="success", created_at=now))
    store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM sync_log").fetchone()[0] == 1
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"sync_log_created_at", "entities_role", "entities_tracked"} <= names


def test_sqlite_two_store_objects_share_the_file(tmp_path: Path) -> None:
    """Two processes' stores see each other's writes (simulated by two objects on one path)."""
    path = tmp_path / "documents.sqlite3"
    first, second = SQLiteDocumentStore(path), SQLiteDocumentStore(path)
    first.update_settings({"ha_url": "http://a:8123"})
    second.update_stream_state({}, {"events_total": 2})
    first.update_stream_state({}, {"events_total": 3})
    assert second.get_settings() == {"ha_url": "http://a:8123"}
    assert first.get_stream_state() == {"events_total": 5}
    first.close()
    second.close()
