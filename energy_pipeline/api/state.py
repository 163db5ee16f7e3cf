"""What every request needs: the two stores, the settings service, the house's time zone, time parsing.

Stores are wrapped in :class:`GuardedStore` so a store failure anywhere in a request becomes a 503 that
names the store (``time-series store (sqlite)``), instead of a 500 with a driver traceback.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import Request

from energy_pipeline.api.errors import ApiError, StoreUnavailable
from energy_pipeline.config import Config
from energy_pipeline.storage.documents import DocumentStore, EntityRecord
from energy_pipeline.storage.secrets import SecretKeyError, SettingsService
from energy_pipeline.storage.timeseries import StoreError, TimeSeriesStore

log = logging.getLogger(__name__)

# Times outside this window are refused (400): far-off years overflow time-zone arithmetic and no
# meter has data there.
MIN_TIME = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(2200, 1, 1, tzinfo=UTC)
_SPACE_OFFSET = re.compile(r"^(?P<base>.*T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (?P<offset>\d{2}(?::?\d{2})?)$")


class GuardedStore:
    """Proxy of a store whose methods raise :class:`StoreUnavailable` (503, naming the store) on failure."""

    def __init__(self, store: Any, label: str):
        self._store = store
        self.label = label

    @property
    def raw(self) -> Any:
        return self._store

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if not callable(attr):
            return attr

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return attr(*args, **kwargs)
            except StoreError as exc:
                raise StoreUnavailable(self.label, exc) from exc

        return call


@dataclass
class ApiState:
    """Kept on ``app.state.api``; one per app."""

    config: Config
    timeseries: TimeSeriesStore  # a GuardedStore at run time
    documents: DocumentStore  # a GuardedStore at run time
    poll_interval_s: float = 0.5
    heartbeat_interval_s: float = 15.0
    ha_timeout_s: float = 5.0
    ha_status_ttl_s: float = 30.0
    dagster_timeout_s: float = 10.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def settings(self) -> SettingsService:
        """Read on every call, so settings saved by anyone take effect without a restart."""
        return SettingsService(self.documents, self.config)

    def time_zone(self) -> str:
        """Override (saved, then environment), else HA's zone recorded by discovery, else UTC."""
        ha_zone = self.documents.get_settings().get("ha_time_zone")
        zone = self.settings.effective_time_zone(ha_zone if isinstance(ha_zone, str) else None)
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            log.warning("stored time zone %r is not an IANA zone; using UTC", zone)
            return "UTC"
        return zone

    def known_secrets(self) -> tuple[str, ...]:
        """Values that must never appear in a response or a log line (redacted if a driver echoes them)."""
        values = [self.config.ha_token or "", self.config.secret_key or "", self.config.mongodb_uri or ""]
        with contextlib.suppress(SecretKeyError, StoreError, ApiError):
            values.append(self.settings.effective_ha_token() or "")
        return tuple(v for v in values if v)

    def entities(self, entity_ids: Sequence[str]) -> dict[str, EntityRecord | None]:
        """Records of the ids; an id with no record but stored data maps to None; unknown ids -> 404."""
        found: dict[str, EntityRecord | None] = {}
        for entity_id in entity_ids:
            found[entity_id] = self.documents.get_entity(entity_id)
        orphans = [e for e, record in found.items() if record is None]
        if orphans:
            with_data = set(self.timeseries.latest_statistic_ts(orphans))
            rest = [e for e in orphans if e not in with_data]
            if rest:
                with_data |= set(self.timeseries.latest_reading_ts(rest))
            unknown = [e for e in orphans if e not in with_data]
            if unknown:
                raise ApiError(404, "unknown_entity",
                               f"unknown entity {', '.join(map(repr, unknown))}: not discovered and no data stored"
                               " (GET /api/entities lists the known ones)")
        return found


def api_state(request: Request) -> ApiState:
    return request.app.state.api


def parse_time(value: str | None, name: str, tz: ZoneInfo) -> datetime | None:
    """ISO 8601 date or date-time -> aware UTC; naive values are local time in the house's zone.

    A ``+`` of an offset that arrived as a space (unencoded in a query string) is put back.
    """
    if value is None:
        return None
    text = value.strip()
    match = _SPACE_OFFSET.match(text)
    if match:
        text = f"{match['base']}+{match['offset']}"
    try:
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=tz)
        utc = parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ApiError(400, "invalid_time", f"{name}: {value!r} is not an ISO 8601 date or date-time "
                       "(e.g. 2026-03-29, 2026-03-29T00:00 in the house's time zone, or "
                       "2026-03-29T00:00:00+01:00)") from None
    if not MIN_TIME <= utc <= MAX_TIME:
        raise ApiError(400, "time_out_of_range",
                       f"{name}: {value!r} lies outside {MIN_TIME.year}..{MAX_TIME.year - 1}")
    return utc


def split_ids(raw: str | None, name: str = "entity_ids", max_count: int | None = None) -> list[str] | None:
    """``"a,b"`` -> ``["a", "b"]``; empty items are ignored; duplicates and too many ids are a 400."""
    if raw is None:
        return None
    ids = [part.strip() for part in raw.split(",") if part.strip()]
    if not ids:
        raise ApiError(400, "invalid_entity_ids", f"{name}: give at least one entity id, comma-separated")
    check_ids(ids, name, max_count)
    return ids


def check_ids(ids: Sequence[str], name: str, max_count: int | None) -> None:
    seen: set[str] = set()
    for entity_id in ids:
        if entity_id in seen:
            raise ApiError(400, "invalid_entity_ids", f"{name}: {entity_id!r} is listed twice")
        seen.add(entity_id)
    if max_count is not None and len(ids) > max_count:
        raise ApiError(400, "too_many_entities", f"{name}: at most {max_count} entities, got {len(ids)}")


def local_iso(value: datetime, tz: ZoneInfo) -> str:
    """Local ISO 8601 time with its offset (what a chart labels with)."""
    return value.astimezone(tz).isoformat()


def jsonable(value: Any, convert: Callable[[datetime], str] | None = None) -> Any:
    """Datetimes to ISO strings, recursively (documents hold aware datetimes)."""
    if isinstance(value, datetime):
        return convert(value) if convert else value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v, convert) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, convert) for v in value]
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value
