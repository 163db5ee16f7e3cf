"""The document store interface: settings, entities, stream state, sync log.

Production backend: MongoDB (``storage/mongo.py``, database ``energy_pipeline``); embedded backend:
SQLite (``storage/sqlite_documents.py``). Documents are plain JSON-able dicts; datetimes are aware
UTC ``datetime`` objects on the way in and out.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

ROLES: tuple[str, ...] = (
    "grid_import", "grid_export", "solar", "battery_in", "battery_out", "gas", "water", "device",
)
STREAM_STATUSES: tuple[str, ...] = ("connecting", "streaming", "reconnecting", "stopped", "failed")
SYNC_LOG_RETENTION = timedelta(days=30)


@dataclass
class EntityRecord:
    """A statistic we may track. ``entity_id`` is HA's statistic id (``sensor.x`` or ``source:x``)."""

    entity_id: str
    name: str | None = None
    unit: str | None = None
    role: str | None = None
    tracked: bool = True
    source: str | None = None
    has_sum: bool = True
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SyncLogEntry:
    """One sync or migration step; kept for 30 days."""

    kind: str  # "statistics", "migration", "discovery", "stream", ...
    status: str  # "success", "failure", ...
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    entity_id: str | None = None
    run_id: str | None = None
    partition: str | None = None
    rows_written: int = 0
    message: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def check_document_keys(changes: dict[str, Any], what: str) -> None:
    """Top-level keys must be plain names: MongoDB reads ``a.b`` as a path and ``$x`` as an operator."""
    for key in changes:
        if not isinstance(key, str) or not key or "." in key or key.startswith("$") or key == "_id":
            raise ValueError(f"{what} key {key!r} is not allowed (no dots, no leading '$', not '_id')")


def check_increments(changes: dict[str, Any], increments: dict[str, int]) -> None:
    check_document_keys(increments, "stream state increment")
    for key, amount in increments.items():
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise ValueError(f"stream state increment {key!r} must be an int, got {amount!r}")
        if key in changes:
            raise ValueError(f"stream state key {key!r} is both set and incremented in one update")


def check_role(role: str | None, entity_id: str) -> None:
    if role is not None and role not in ROLES:
        raise ValueError(f"entity {entity_id!r}: role {role!r} is not one of {', '.join(ROLES)}")


def validate_entities(entities: Iterable[EntityRecord]) -> list[EntityRecord]:
    """The records of an upsert, checked before anything is written (same rules in every backend)."""
    records = list(entities)
    for record in records:
        if not record.entity_id:
            raise ValueError("entity without entity_id")
        check_role(record.role, record.entity_id)
    return records


class DocumentStore(ABC):
    backend: str = "abstract"

    @abstractmethod
    def ensure_schema(self) -> None:
        """Create collections/tables and indexes (TTL on sync_log) if missing; idempotent."""

    @abstractmethod
    def health(self) -> None:
        """Raise :class:`energy_pipeline.storage.timeseries.StoreUnavailableError` if not answering."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release connections."""

    # -- settings: one document; values are stored as given (encryption happens above this layer) --
    @abstractmethod
    def get_settings(self) -> dict[str, Any]:
        """The settings document without its id; ``{}`` when nothing was saved."""

    @abstractmethod
    def update_settings(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Merge ``changes`` (a value of ``None`` removes the key); returns the new document."""

    # -- entities --
    @abstractmethod
    def upsert_entities(self, entities: Iterable[EntityRecord]) -> tuple[int, int]:
        """Insert new entities, refresh name/unit/role/source/has_sum of known ones.

        The ``tracked`` flag of an entity already stored is kept (the user's choice wins over
        discovery); new entities take the record's ``tracked``. Returns ``(inserted, updated)``.
        """

    @abstractmethod
    def list_entities(self, role: str | None = None, tracked: bool | None = None) -> list[EntityRecord]:
        """Ordered by entity_id."""

    @abstractmethod
    def get_entity(self, entity_id: str) -> EntityRecord | None: ...

    @abstractmethod
    def set_tracked(self, entity_id: str, tracked: bool) -> EntityRecord | None:
        """Returns the updated record, or None when the entity is unknown."""

    # -- stream state: one document --
    @abstractmethod
    def get_stream_state(self) -> dict[str, Any]: ...

    @abstractmethod
    def update_stream_state(self, changes: dict[str, Any], increments: dict[str, int] | None = None) -> None:
        """Set ``changes`` and atomically add ``increments`` (e.g. ``{"events_written": 12}``)."""

    # -- asset check results (latest per check), shown by the API's status --
    @abstractmethod
    def record_check_result(self, check_name: str, result: dict[str, Any]) -> None: ...

    @abstractmethod
    def latest_check_results(self) -> dict[str, dict[str, Any]]: ...

    # -- sync log --
    @abstractmethod
    def append_sync_log(self, entry: SyncLogEntry) -> None: ...

    @abstractmethod
    def list_sync_log(self, limit: int = 50, entity_id: str | None = None,
                      kind: str | None = None) -> list[SyncLogEntry]:
        """Newest first; entries older than 30 days are not returned (and are purged)."""
