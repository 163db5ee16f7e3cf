"""Production document store: MongoDB through pymongo 4 (database ``energy_pipeline``).

Collections: ``settings`` (one document ``_id: "settings"``), ``entities`` (``_id`` = statistic id),
``stream_state`` (``_id: "stream"``), ``check_results`` (``_id`` = check name) and ``sync_log`` (TTL
index on ``created_at``). The client uses short timeouts so an unreachable server surfaces as a
:class:`StoreUnavailableError` naming the host within seconds, never a hung Dagster run; transient
connection drops (``AutoReconnect``) are retried a few times with backoff.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, MongoClient, ReturnDocument, UpdateOne
from pymongo.database import Database
from pymongo.errors import (
    AutoReconnect,
    ConfigurationError,
    ConnectionFailure,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
)

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

log = logging.getLogger(__name__)

T = TypeVar("T")

SETTINGS_ID = "settings"
STREAM_ID = "stream"
TTL_INDEX_NAME = "created_at_ttl"
DEFAULT_TIMEOUTS_MS = {"serverSelectionTimeoutMS": 5000, "connectTimeoutMS": 5000, "socketTimeoutMS": 10000}
RETRY_ATTEMPTS = 3
RETRY_BACKOFF_S = 0.25
_AUTH_FAILED = 18
_INDEX_CONFLICT_CODES = (85, 86)  # IndexOptionsConflict, IndexKeySpecsConflict


def redact_hosts(uri: str) -> str:
    """The host list of a MongoDB URI, without user name, password, database or options."""
    rest = uri.split("://", 1)[-1]
    hosts = rest.split("/", 1)[0].split("?", 1)[0]
    return hosts.rsplit("@", 1)[-1] or "localhost"


def _uri_options(uri: str) -> set[str]:
    query = uri.split("?", 1)[1] if "?" in uri else ""
    return {unquote(key).lower() for key, _ in parse_qsl(query, keep_blank_values=True)}


def _utc_values(value: Any, where: str) -> Any:
    """Normalise datetimes to UTC and refuse naive ones (BSON would silently take them as UTC)."""
    if isinstance(value, datetime):
        return ensure_utc(value, where)
    if isinstance(value, dict):
        return {key: _utc_values(item, where) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_utc_values(item, where) for item in value]
    return value


def _without_id(doc: dict[str, Any] | None) -> dict[str, Any]:
    if not doc:
        return {}
    doc = dict(doc)
    doc.pop("_id", None)
    return doc


class MongoDocumentStore(DocumentStore):
    """The document store on MongoDB. The client is created lazily, again in a forked child process."""

    backend = "mongodb"

    def __init__(self, uri: str, database: str = "energy_pipeline", *,
                 timeouts_ms: dict[str, int] | None = None,
                 retry_attempts: int = RETRY_ATTEMPTS, retry_backoff_s: float = RETRY_BACKOFF_S):
        self._uri = uri
        self.hosts = redact_hosts(uri)
        self.database_name = database
        self.timeouts_ms = {**DEFAULT_TIMEOUTS_MS, **(timeouts_ms or {})}
        self.retry_attempts = max(1, retry_attempts)
        self.retry_backoff_s = retry_backoff_s
        self._lock = threading.Lock()
        self._client: MongoClient | None = None
        self._client_pid: int | None = None
        self._schema_ready = False

    def __repr__(self) -> str:
        return f"MongoDocumentStore(hosts={self.hosts!r}, database={self.database_name!r})"

    # -- connection and error handling --

    def _new_client(self) -> MongoClient:
        # Options written in the URI win over our defaults (pymongo lets keyword arguments win).
        in_uri = _uri_options(self._uri)
        options: dict[str, Any] = {k: v for k, v in self.timeouts_ms.items() if k.lower() not in in_uri}
        if "retrywrites" not in in_uri:
            options["retryWrites"] = True
        if "retryreads" not in in_uri:
            options["retryReads"] = True
        if "appname" not in in_uri:
            options["appname"] = "energy_pipeline"
        try:
            return MongoClient(self._uri, tz_aware=True, tzinfo=UTC, **options)
        except (ConfigurationError, ValueError) as exc:
            if "DNS" in str(exc):  # mongodb+srv:// resolves its hosts here; DNS may come back later
                raise StoreUnavailableError(
                    f"MongoDB at {self.hosts}: DNS lookup failed ({self._scrub(exc)}); check the host name "
                    "in MONGODB_URI and this machine's DNS") from None
            raise StoreError(f"MONGODB_URI for {self.hosts} is not usable: {self._scrub(exc)}") from None
        except PyMongoError as exc:
            raise self._translate(exc) from None

    def _db(self) -> Database:
        pid = os.getpid()
        with self._lock:
            if self._client is None or self._client_pid != pid:
                # A MongoClient must not be used across fork(): the child opens its own.
                self._client = self._new_client()
                self._client_pid = pid
            return self._client[self.database_name]

    def _scrub(self, exc: BaseException) -> str:
        """The error text with the URI's password removed, should the driver ever echo it."""
        text = str(exc)
        userinfo = self._uri.split("://", 1)[-1].split("/", 1)[0].rpartition("@")[0]
        if ":" in userinfo:
            password = userinfo.split(":", 1)[1]
            for secret in {password, unquote(password)}:
                if secret:
                    text = text.replace(secret, "***")
        return text

    def _translate(self, exc: PyMongoError) -> StoreError:
        if isinstance(exc, (ServerSelectionTimeoutError, ConnectionFailure)):
            return StoreUnavailableError(
                f"MongoDB at {self.hosts} did not answer ({type(exc).__name__}: {self._scrub(exc)[:300]}); "
                "check that the server is running and reachable from here, and the host, port and TLS "
                "options in MONGODB_URI"
            )
        if isinstance(exc, OperationFailure) and exc.code == _AUTH_FAILED:
            return StoreError(f"MongoDB at {self.hosts} refused the credentials; check the user name and "
                              "password (and authSource) in MONGODB_URI")
        return StoreError(f"MongoDB at {self.hosts}, database {self.database_name!r}: "
                          f"{type(exc).__name__}: {self._scrub(exc)[:500]}")

    def _run(self, operation: Callable[[Database], T], *, retry: bool = True) -> T:
        """Run ``operation``, retrying a dropped connection; errors become :class:`StoreError`.

        A server-selection timeout is not retried: it already waited the whole timeout. Operations that
        are not idempotent (``$inc``) pass ``retry=False``: a retry after a lost reply could count twice.
        """
        attempts = self.retry_attempts if retry else 1
        for attempt in range(1, attempts + 1):
            try:
                db = self._db()
                if not self._schema_ready:
                    self._create_indexes(db)
                return operation(db)
            except ServerSelectionTimeoutError as exc:
                raise self._translate(exc) from None
            except AutoReconnect as exc:
                if attempt >= attempts:
                    raise self._translate(exc) from None
                log.warning("MongoDB at %s: connection dropped (%s); retry %d/%d", self.hosts,
                            type(exc).__name__, attempt, attempts - 1)
                time.sleep(self.retry_backoff_s * 2 ** (attempt - 1))
            except PyMongoError as exc:
                raise self._translate(exc) from None
        raise AssertionError("unreachable")  # pragma: no cover

    # -- schema --

    def _create_indexes(self, db: Database) -> None:
        ttl = int(SYNC_LOG_RETENTION.total_seconds())
        db.entities.create_index([("role", ASCENDING)], name="role_1")
        db.entities.create_index([("tracked", ASCENDING)], name="tracked_1")
        db.sync_log.create_index([("entity_id", ASCENDING), ("created_at", DESCENDING)],
                                 name="entity_id_1_created_at_-1")
        try:
            db.sync_log.create_index([("created_at", ASCENDING)], name=TTL_INDEX_NAME, expireAfterSeconds=ttl)
        except OperationFailure as exc:
            if exc.code not in _INDEX_CONFLICT_CODES:
                raise
            # Same key, other expiry (retention changed): adjust it in place, as MongoDB documents.
            db.command("collMod", "sync_log",
                       index={"keyPattern": {"created_at": 1}, "expireAfterSeconds": ttl})
        self._schema_ready = True

    def ensure_schema(self) -> None:
        self._schema_ready = False
        self._run(lambda db: None)

    def health(self) -> None:
        def ping(db: Database) -> None:
            db.client.admin.command("ping")

        try:
            ping(self._db())
        except PyMongoError as exc:
            raise self._translate(exc) from None

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            self._client_pid = None
            self._schema_ready = False
        if client is not None:
            client.close()

    # -- settings --

    def get_settings(self) -> dict[str, Any]:
        return _without_id(self._run(lambda db: db.settings.find_one({"_id": SETTINGS_ID})))

    def update_settings(self, changes: dict[str, Any]) -> dict[str, Any]:
        check_document_keys(changes, "settings")
        to_set = {k: _utc_values(v, f"settings {k}") for k, v in changes.items() if v is not None}
        to_unset = {k: "" for k, v in changes.items() if v is None}
        update: dict[str, Any] = {}
        if to_set:
            update["$set"] = to_set
        if to_unset:
            update["$unset"] = to_unset
        if not update:
            return self.get_settings()
        return _without_id(self._run(lambda db: db.settings.find_one_and_update(
            {"_id": SETTINGS_ID}, update, upsert=True, return_document=ReturnDocument.AFTER)))

    # -- entities --

    @staticmethod
    def _entity(doc: dict[str, Any]) -> EntityRecord:
        return EntityRecord(
            entity_id=doc["_id"], name=doc.get("name"), unit=doc.get("unit"), role=doc.get("role"),
            tracked=bool(doc.get("tracked", True)), source=doc.get("source"),
            has_sum=bool(doc.get("has_sum", True)), created_at=doc.get("created_at"),
            updated_at=doc.get("updated_at"),
        )

    def upsert_entities(self, entities: Iterable[EntityRecord]) -> tuple[int, int]:
        """One ordered bulk write; ``$setOnInsert`` keeps the user's ``tracked`` flag on known entities."""
        records = validate_entities(entities)
        if not records:
            return 0, 0
        now = datetime.now(UTC)
        requests = [
            UpdateOne(
                {"_id": r.entity_id},
                {
                    "$setOnInsert": {
                        "tracked": bool(r.tracked),
                        "created_at": ensure_utc(r.created_at, "created_at") if r.created_at else now,
                    },
                    "$set": {"name": r.name, "unit": r.unit, "role": r.role, "source": r.source,
                             "has_sum": bool(r.has_sum), "updated_at": now},
                },
                upsert=True,
            )
            for r in records
        ]
        # Idempotent (upserts keyed by _id), so a retry after a dropped connection is safe.
        result = self._run(lambda db: db.entities.bulk_write(requests, ordered=True))
        return result.upserted_count, result.matched_count

    def list_entities(self, role: str | None = None, tracked: bool | None = None) -> list[EntityRecord]:
        query: dict[str, Any] = {}
        if role is not None:
            query["role"] = role
        if tracked is not None:
            query["tracked"] = tracked
        docs = self._run(lambda db: list(db.entities.find(query).sort("_id", ASCENDING)))
        return [self._entity(doc) for doc in docs]

    def get_entity(self, entity_id: str) -> EntityRecord | None:
        doc = self._run(lambda db: db.entities.find_one({"_id": entity_id}))
        return self._entity(doc) if doc else None

    def set_tracked(self, entity_id: str, tracked: bool) -> EntityRecord | None:
        doc = self._run(lambda db: db.entities.find_one_and_update(
            {"_id": entity_id}, {"$set": {"tracked": bool(tracked), "updated_at": datetime.now(UTC)}},
            return_document=ReturnDocument.AFTER))
        return self._entity(doc) if doc else None

    # -- stream state --

    def get_stream_state(self) -> dict[str, Any]:
        return _without_id(self._run(lambda db: db.stream_state.find_one({"_id": STREAM_ID})))

    def update_stream_state(self, changes: dict[str, Any], increments: dict[str, int] | None = None) -> None:
        increments = increments or {}
        check_document_keys(changes, "stream state")
        check_increments(changes, increments)
        update: dict[str, Any] = {}
        if changes:
            update["$set"] = {k: _utc_values(v, f"stream state {k}") for k, v in changes.items()}
        if increments:
            update["$inc"] = dict(increments)
        if not update:
            return
        self._run(lambda db: db.stream_state.update_one({"_id": STREAM_ID}, update, upsert=True),
                  retry=not increments)

    # -- check results --

    def record_check_result(self, check_name: str, result: dict[str, Any]) -> None:
        if not check_name:
            raise ValueError("check result without a check name")
        doc = {"_id": check_name, "result": _utc_values(result, f"check {check_name}"),
               "updated_at": datetime.now(UTC)}
        self._run(lambda db: db.check_results.replace_one({"_id": check_name}, doc, upsert=True))

    def latest_check_results(self) -> dict[str, dict[str, Any]]:
        docs = self._run(lambda db: list(db.check_results.find().sort("_id", ASCENDING)))
        return {doc["_id"]: doc.get("result", {}) for doc in docs}

    # -- sync log --

    def append_sync_log(self, entry: SyncLogEntry) -> None:
        """Expiry is the TTL index's job; the ``_id`` is made here so a retried insert cannot duplicate."""
        doc = {
            "_id": ObjectId(),
            "created_at": ensure_utc(entry.created_at, "sync log created_at"),
            "kind": entry.kind, "status": entry.status, "entity_id": entry.entity_id,
            "run_id": entry.run_id, "partition": entry.partition, "rows_written": int(entry.rows_written),
            "message": entry.message, "details": _utc_values(entry.details or {}, "sync log details"),
        }

        def insert(db: Database) -> None:
            # DuplicateKeyError: an earlier attempt went through before the connection dropped.
            with contextlib.suppress(DuplicateKeyError):
                db.sync_log.insert_one(doc)

        self._run(insert)

    def list_sync_log(self, limit: int = 50, entity_id: str | None = None,
                      kind: str | None = None) -> list[SyncLogEntry]:
        """Newest first; filters on the retention window because TTL deletion runs only every minute."""
        if limit <= 0:
            return []
        query: dict[str, Any] = {"created_at": {"$gte": datetime.now(UTC) - SYNC_LOG_RETENTION}}
        if entity_id is not None:
            query["entity_id"] = entity_id
        if kind is not None:
            query["kind"] = kind
        order = [("created_at", DESCENDING), ("_id", DESCENDING)]
        docs = self._run(lambda db: list(db.sync_log.find(query).sort(order).limit(int(limit))))
        return [
            SyncLogEntry(kind=d["kind"], status=d["status"], created_at=d["created_at"],
                         entity_id=d.get("entity_id"), run_id=d.get("run_id"), partition=d.get("partition"),
                         rows_written=int(d.get("rows_written") or 0), message=d.get("message"),
                         details=d.get("details") or {})
            for d in docs
        ]
