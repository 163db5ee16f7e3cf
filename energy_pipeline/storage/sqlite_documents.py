"""Embedded document store: SQLite in WAL mode, safe for the several processes Dagster runs.

Each process and thread gets its own connection (SQLite connections must not cross a ``fork``), writes
run in short ``BEGIN IMMEDIATE`` transactions (the write lock is taken up front, so a read-modify-write
such as a stream-state increment cannot interleave with another process), and ``busy_timeout`` makes a
writer wait for the lock instead of failing at once.

Datetimes are stored as fixed-width UTC ISO strings (so they sort as text) and truncated to
milliseconds, as BSON does, so both document backends return the same values for the same input.
Inside JSON documents they are encoded as ``{"$date": "<iso>"}`` and come back as aware UTC datetimes.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from energy_pipeline.storage.buckets import ensure_utc
from energy_pipeline.storage.documents import (
    SYNC_LOG_RETENTION,
    DocumentStore,
    EntityRecord,
    SyncLogEntry,
    check_document_keys,
    check_increments,
    validate_entities,
)
from energy_pipeline.storage.timeseries import StoreError, StoreUnavailableError

BUSY_TIMEOUT_S = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS entities (
    entity_id TEXT PRIMARY KEY,
    name TEXT,
    unit TEXT,
    role TEXT,
    tracked INTEGER NOT NULL,
    source TEXT,
    has_sum INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS entities_role ON entities (role);
CREATE INDEX IF NOT EXISTS entities_tracked ON entities (tracked);
CREATE TABLE IF NOT EXISTS stream_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS check_results (
    check_name TEXT PRIMARY KEY,
    doc TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sync_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    entity_id TEXT,
    run_id TEXT,
    partition TEXT,
    rows_written INTEGER NOT NULL DEFAULT 0,
    message TEXT,
    details TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS sync_log_created_at ON sync_log (created_at);
CREATE INDEX IF NOT EXISTS sync_log_entity_created_at ON sync_log (entity_id, created_at);
"""

_ENTITY_COLUMNS = "entity_id, name, unit, role, tracked, source, has_sum, created_at, updated_at"
_SYNC_COLUMNS = "created_at, kind, status, entity_id, run_id, partition, rows_written, message, details"


# -- datetimes and JSON ---------------------------------------------------------------------------------

def to_db_time(value: datetime, name: str = "datetime") -> str:
    """Fixed-width UTC ISO string at millisecond precision (BSON's), so text order is time order."""
    return ensure_utc(value, name).isoformat(timespec="milliseconds")


def from_db_time(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def _now() -> datetime:
    return datetime.now(UTC)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$date": to_db_time(value)}
    if isinstance(value, (set, frozenset)):
        raise TypeError("sets are not JSON documents; pass a list")
    raise TypeError(f"{type(value).__name__} values cannot be stored in a document")


def _json_object_hook(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and "$date" in obj and isinstance(obj["$date"], str):
        return from_db_time(obj["$date"])
    return obj


def dumps(document: Any) -> str:
    """JSON that round-trips aware datetimes as ``{"$date": iso}``; naive datetimes are refused."""
    return json.dumps(document, default=_json_default, allow_nan=False, separators=(",", ":"))


def loads(text: str) -> Any:
    return json.loads(text, object_hook=_json_object_hook)


# -- the store ------------------------------------------------------------------------------------------

class SQLiteDocumentStore(DocumentStore):
    """Settings, entities, stream state, check results and the sync log in one SQLite file."""

    backend = "sqlite"

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[tuple[int, sqlite3.Connection]] = []
        self._schema_pid: int | None = None

    def __repr__(self) -> str:
        return f"SQLiteDocumentStore({str(self.path)!r})"

    # -- connections --

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection in this process; a forked child opens its own."""
        pid = os.getpid()
        cached = getattr(self._local, "conn", None)
        if cached is not None and cached[0] == pid:
            return cached[1]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
        except (OSError, sqlite3.Error) as exc:
            raise self._unavailable(exc) from exc
        conn.row_factory = sqlite3.Row
        self._local.conn = (pid, conn)
        with self._lock:
            self._connections.append((pid, conn))
        if self._schema_pid != pid:
            self._create_schema(conn)
            self._schema_pid = pid
        return conn

    def _unavailable(self, exc: BaseException) -> StoreUnavailableError:
        return StoreUnavailableError(
            f"SQLite document store {self.path} is not usable ({exc}); check that the directory "
            "(ENERGY_PIPELINE_HOME) exists and is writable and that no process holds a long write lock"
        )

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        try:
            conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from exc

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        try:
            yield conn
        except sqlite3.OperationalError as exc:
            raise self._unavailable(exc) from exc
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite document store {self.path}: {exc}") from exc

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A short transaction holding the write lock from its start (read-modify-write is atomic)."""
        conn = self._connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise self._unavailable(exc) from exc
        try:
            yield conn
        except BaseException as exc:
            conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError):
                raise self._unavailable(exc) from exc
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"SQLite document store {self.path}: {exc}") from exc
            raise
        else:
            try:
                conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                conn.execute("ROLLBACK")
                raise self._unavailable(exc) from exc

    def ensure_schema(self) -> None:
        self._create_schema(self._connection())

    def health(self) -> None:
        with self._read() as conn:
            conn.execute("SELECT 1 FROM settings LIMIT 1").fetchall()

    def close(self) -> None:
        """Close this process's connections (a forked child never closes its parent's)."""
        pid = os.getpid()
        with self._lock:
            mine = [conn for owner, conn in self._connections if owner == pid]
            self._connections = [(owner, conn) for owner, conn in self._connections if owner != pid]
        for conn in mine:
            conn.close()
        self._local = threading.local()
        self._schema_pid = None

    # -- single JSON documents --

    def _get_doc(self, conn: sqlite3.Connection, table: str) -> dict[str, Any]:
        row = conn.execute(f"SELECT doc FROM {table} WHERE id = 1").fetchone()
        return loads(row["doc"]) if row else {}

    def _put_doc(self, conn: sqlite3.Connection, table: str, doc: dict[str, Any]) -> None:
        conn.execute(f"INSERT INTO {table} (id, doc) VALUES (1, ?) "
                     "ON CONFLICT (id) DO UPDATE SET doc = excluded.doc", (dumps(doc),))

    # -- settings --

    def get_settings(self) -> dict[str, Any]:
        with self._read() as conn:
            return self._get_doc(conn, "settings")

    def update_settings(self, changes: dict[str, Any]) -> dict[str, Any]:
        check_document_keys(changes, "settings")
        with self._write() as conn:
            doc = self._get_doc(conn, "settings")
            for key, value in changes.items():
                if value is None:
                    doc.pop(key, None)
                else:
                    doc[key] = value
            self._put_doc(conn, "settings", doc)
        return loads(dumps(doc))

    # -- entities --

    @staticmethod
    def _entity(row: sqlite3.Row) -> EntityRecord:
        return EntityRecord(
            entity_id=row["entity_id"], name=row["name"], unit=row["unit"], role=row["role"],
            tracked=bool(row["tracked"]), source=row["source"], has_sum=bool(row["has_sum"]),
            created_at=from_db_time(row["created_at"]), updated_at=from_db_time(row["updated_at"]),
        )

    def upsert_entities(self, entities: Iterable[EntityRecord]) -> tuple[int, int]:
        records = validate_entities(entities)
        if not records:
            return 0, 0
        now = to_db_time(_now())
        inserted = updated = 0
        with self._write() as conn:
            known = {
                row[0] for row in conn.execute(
                    f"SELECT entity_id FROM entities WHERE entity_id IN ({','.join('?' * len(records))})",
                    [r.entity_id for r in records],
                )
            }
            for record in records:
                created = to_db_time(record.created_at, "created_at") if record.created_at else now
                conn.execute(
                    f"INSERT INTO entities ({_ENTITY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (entity_id) DO UPDATE SET name = excluded.name, unit = excluded.unit, "
                    "role = excluded.role, source = excluded.source, has_sum = excluded.has_sum, "
                    "updated_at = excluded.updated_at",
                    (record.entity_id, record.name, record.unit, record.role, int(record.tracked),
                     record.source, int(record.has_sum), created, now),
                )
                if record.entity_id in known:
                    updated += 1
                else:
                    inserted += 1
                    known.add(record.entity_id)
        return inserted, updated

    def list_entities(self, role: str | None = None, tracked: bool | None = None) -> list[EntityRecord]:
        where, params = [], []
        if role is not None:
            where.append("role = ?")
            params.append(role)
        if tracked is not None:
            where.append("tracked = ?")
            params.append(int(tracked))
        sql = f"SELECT {_ENTITY_COLUMNS} FROM entities"
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._read() as conn:
            return [self._entity(row) for row in conn.execute(sql + " ORDER BY entity_id", params)]

    def get_entity(self, entity_id: str) -> EntityRecord | None:
        with self._read() as conn:
            row = conn.execute(f"SELECT {_ENTITY_COLUMNS} FROM entities WHERE entity_id = ?",
                               (entity_id,)).fetchone()
        return self._entity(row) if row else None

    def set_tracked(self, entity_id: str, tracked: bool) -> EntityRecord | None:
        with self._write() as conn:
            cursor = conn.execute("UPDATE entities SET tracked = ?, updated_at = ? WHERE entity_id = ?",
                                  (int(tracked), to_db_time(_now()), entity_id))
            if cursor.rowcount == 0:
                return None
            row = conn.execute(f"SELECT {_ENTITY_COLUMNS} FROM entities WHERE entity_id = ?",
                               (entity_id,)).fetchone()
        return self._entity(row)

    # -- stream state --

    def get_stream_state(self) -> dict[str, Any]:
        with self._read() as conn:
            return self._get_doc(conn, "stream_state")

    def update_stream_state(self, changes: dict[str, Any], increments: dict[str, int] | None = None) -> None:
        increments = increments or {}
        check_document_keys(changes, "stream state")
        check_increments(changes, increments)
        if not changes and not increments:
            return
        with self._write() as conn:
            doc = self._get_doc(conn, "stream_state")
            doc.update(changes)
            for key, amount in increments.items():
                current = doc.get(key) or 0
                if isinstance(current, bool) or not isinstance(current, (int, float)):
                    raise StoreError(f"stream state {key!r} holds {current!r}, which cannot be incremented")
                doc[key] = current + amount
            self._put_doc(conn, "stream_state", doc)

    # -- check results --

    def record_check_result(self, check_name: str, result: dict[str, Any]) -> None:
        if not check_name:
            raise ValueError("check result without a check name")
        doc = dumps(result)
        with self._write() as conn:
            conn.execute("INSERT INTO check_results (check_name, doc, updated_at) VALUES (?, ?, ?) "
                         "ON CONFLICT (check_name) DO UPDATE SET doc = excluded.doc, "
                         "updated_at = excluded.updated_at", (check_name, doc, to_db_time(_now())))

    def latest_check_results(self) -> dict[str, dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute("SELECT check_name, doc FROM check_results ORDER BY check_name").fetchall()
        return {row["check_name"]: loads(row["doc"]) for row in rows}

    # -- sync log --

    def append_sync_log(self, entry: SyncLogEntry) -> None:
        """Insert the entry and purge what fell out of the retention window (cheap: indexed range)."""
        values = (to_db_time(entry.created_at, "sync log created_at"), entry.kind, entry.status,
                  entry.entity_id, entry.run_id, entry.partition, int(entry.rows_written), entry.message,
                  dumps(entry.details or {}))
        cutoff = to_db_time(_now() - SYNC_LOG_RETENTION)
        with self._write() as conn:
            conn.execute(f"INSERT INTO sync_log ({_SYNC_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", values)
            conn.execute("DELETE FROM sync_log WHERE created_at < ?", (cutoff,))

    def list_sync_log(self, limit: int = 50, entity_id: str | None = None,
                      kind: str | None = None) -> list[SyncLogEntry]:
        if limit <= 0:
            return []
        where, params = ["created_at >= ?"], [to_db_time(_now() - SYNC_LOG_RETENTION)]
        if entity_id is not None:
            where.append("entity_id = ?")
            params.append(entity_id)
        if kind is not None:
            where.append("kind = ?")
            params.append(kind)
        sql = (f"SELECT {_SYNC_COLUMNS} FROM sync_log WHERE {' AND '.join(where)} "
               "ORDER BY created_at DESC, id DESC LIMIT ?")
        with self._read() as conn:
            rows = conn.execute(sql, [*params, int(limit)]).fetchall()
        return [
            SyncLogEntry(kind=row["kind"], status=row["status"], created_at=from_db_time(row["created_at"]),
                         entity_id=row["entity_id"], run_id=row["run_id"], partition=row["partition"],
                         rows_written=row["rows_written"], message=row["message"],
                         details=loads(row["details"]))
            for row in rows
        ]
