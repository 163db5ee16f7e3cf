"""Typed results of the Home Assistant WebSocket API (shapes as recorded in shared/ha-fixtures)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class HomeAssistantError(RuntimeError):
    """Base of every error the client raises. Messages never contain the access token."""


class HomeAssistantConnectionError(HomeAssistantError):
    """Unreachable host, refused connection, TLS failure, timeout or a dropped connection."""


class HomeAssistantAuthError(HomeAssistantError):
    """HA answered ``auth_invalid``: the token is wrong or revoked."""


class InvalidHomeAssistantUrlError(HomeAssistantError, ValueError):
    """``HA_URL`` is not one of the accepted forms."""


class CommandError(HomeAssistantError):
    """HA answered ``success: false``; ``code`` is HA's error code (``not_found``, ``invalid_format``, ...)."""

    def __init__(self, code: str, message: str, command: str | None = None):
        self.code = code
        self.message = message
        self.command = command
        where = f" for {command}" if command else ""
        super().__init__(f"Home Assistant error {code}{where}: {message}")


@dataclass(frozen=True)
class HAConfig:
    time_zone: str
    version: str
    location_name: str | None = None
    currency: str | None = None
    unit_system: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StatisticMetadata:
    statistic_id: str
    has_sum: bool
    has_mean: bool = False
    name: str | None = None
    source: str | None = None
    unit: str | None = None  # statistics_unit_of_measurement
    display_unit: str | None = None
    unit_class: str | None = None


@dataclass(frozen=True)
class EnergySource:
    """One statistic the energy dashboard uses, with the role it plays."""

    statistic_id: str
    role: str  # grid_import, grid_export, solar, battery_in, battery_out, gas, water, device
    name: str | None = None


@dataclass(frozen=True)
class EnergyPrefs:
    sources: tuple[EnergySource, ...]

    def roles(self) -> dict[str, str]:
        """statistic_id -> role (first role wins when one statistic appears twice)."""
        out: dict[str, str] = {}
        for src in self.sources:
            out.setdefault(src.statistic_id, src.role)
        return out


@dataclass(frozen=True, slots=True)
class HAStatistic:
    """One row of ``recorder/statistics_during_period``; ``start``/``end`` are aware UTC datetimes."""

    start: datetime
    end: datetime
    change: float | None = None
    sum: float | None = None
    state: float | None = None
    mean: float | None = None
    min: float | None = None
    max: float | None = None
    last_reset: datetime | None = None


@dataclass(frozen=True, slots=True)
class HAState:
    """One raw state from ``history/history_during_period`` or an event; ``value`` None when non-numeric."""

    entity_id: str
    state: str
    value: float | None
    last_changed: datetime
    last_updated: datetime


@dataclass(frozen=True, slots=True)
class StateChangedEvent:
    entity_id: str
    new_state: HAState | None  # None when the entity was removed
    old_state: HAState | None
    time_fired: datetime | None = None


@dataclass(frozen=True)
class DiscoveredEntity:
    statistic_id: str
    role: str
    unit: str | None
    has_sum: bool
    name: str | None = None
    source: str | None = None
    unit_class: str | None = None


def parse_state_value(state: str | None) -> float | None:
    """A state string as a finite float, or None for ``unavailable``, ``unknown`` and garbage."""
    if state is None:
        return None
    try:
        value = float(state)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


class CommandTimeoutError(HomeAssistantConnectionError):
    """No reply to a command within the command timeout; the connection may be dead or HA overloaded."""


#: Roles an energy statistic can play (``DiscoveredEntity.role``). ``unclassified`` is used when the
#: energy dashboard is not configured: the statistic is a meter, but HA does not say which one.
ROLES: tuple[str, ...] = ("grid_import", "grid_export", "solar", "battery_in", "battery_out", "gas", "water",
                          "device")
ROLE_UNCLASSIFIED = "unclassified"


@dataclass(frozen=True, slots=True)
class HAEvent:
    """Any event from ``subscribe_events`` (e.g. ``recorder_hourly_statistics_generated``)."""

    event_type: str
    data: dict[str, Any]
    time_fired: datetime | None = None
    origin: str | None = None


@dataclass(frozen=True, slots=True)
class StreamGap:
    """Live events may be missing between ``start`` and ``end`` (aware UTC): fill them from history."""

    start: datetime
    end: datetime
