"""Request and response bodies: the OpenAPI contract of the API (snake_case, ISO 8601 strings)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from energy_pipeline.storage.documents import ROLES
from energy_pipeline.tariffs import EXAMPLE_TARIFF

PeriodName = Literal["hour", "day", "week", "month"]
RoleName = Literal[ROLES]  # type: ignore[valid-type]
MAX_COMPARE = 10


class EntityOut(BaseModel):
    entity_id: str
    name: str | None = None
    unit: str | None = None
    role: str | None = None
    tracked: bool
    source: str | None = None
    has_sum: bool = True
    created_at: str | None = None
    updated_at: str | None = None


class EntitiesOut(BaseModel):
    entities: list[EntityOut]


class TrackedIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tracked: StrictBool


class Total(BaseModel):
    consumption: float | None = Field(description="Sum over buckets with data; null when none has data")
    cost: float | None = Field(description="energy_cost + fixed_cost; null without a tariff or data")
    energy_cost: float | None
    fixed_cost: float | None = Field(description="Daily charges of the whole local days in the buckets")


class Bucket(BaseModel):
    start: str = Field(description="Bucket start, local ISO 8601 time with offset")
    end: str
    hours: int = Field(description="Length in hours (23 or 25 on a DST day)")


class BucketValues(Bucket):
    hours_with_data: int = Field(description="Stored hours inside the bucket")
    consumption: float | None = Field(description="Sum of hourly change; null when no hour is stored")
    cost: float | None = None
    energy_cost: float | None = None
    fixed_cost: float | None = None


class StatisticsOut(BaseModel):
    entity_id: str
    name: str | None
    unit: str | None
    period: PeriodName
    time_zone: str
    start: str = Field(description="Start of the first bucket (the range is widened to whole buckets)")
    end: str = Field(description="End of the last bucket")
    currency: str | None = Field(description="Tariff currency; null when no tariff is set or the unit is not energy")
    buckets: list[BucketValues]
    total: Total


class CompareIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    entity_ids: list[str] = Field(min_length=1, max_length=MAX_COMPARE)
    start: str | None = Field(default=None, description="ISO 8601; naive = house time zone; default end - 7 days")
    end: str | None = Field(default=None, description="ISO 8601; default now")
    period: PeriodName = "hour"


class CompareSeries(BaseModel):
    entity_id: str
    name: str | None
    unit: str | None
    consumption: list[float | None] = Field(description="Aligned with buckets; null = no stored hour")
    hours_with_data: list[int]
    cost: list[float | None] = Field(description="Aligned with buckets; null = no tariff, no price or no data")
    total: Total


class CompareOut(BaseModel):
    period: PeriodName
    time_zone: str
    start: str
    end: str
    currency: str | None
    buckets: list[Bucket]
    series: list[CompareSeries]


class ReadingOut(BaseModel):
    entity_id: str
    ts: str = Field(description="The state's last_changed, local ISO 8601 time with offset")
    value: float


class ReadingsOut(BaseModel):
    entity_id: str
    time_zone: str
    readings: list[ReadingOut]


class SettingsOut(BaseModel):
    """Settings as shown: the token only as configured or not, never its value."""

    model_config = ConfigDict(extra="allow")
    ha_url: str | None = None
    ha_url_source: str | None = None
    ha_token_configured: bool = False
    ha_token_source: str | None = None
    ha_token_encrypted: bool = False
    secret_key_configured: bool = False
    time_zone: str | None = Field(default=None, description="Override of the house's time zone, if any")
    time_zone_source: str | None = None
    ha_time_zone: str | None = Field(default=None, description="Home Assistant's zone, from the last discovery")
    effective_time_zone: str = Field(description="The zone buckets are computed in")
    tariff: dict[str, Any] | None = None


class SettingsIn(BaseModel):
    """Omitted fields stay as they are; ``null`` or ``""`` removes a saved value (the environment applies)."""

    model_config = ConfigDict(extra="forbid")
    ha_url: str | None = Field(default=None, examples=["http://homeassistant.local:8123"])
    ha_token: str | None = Field(default=None, description="Long-lived access token; write-only")
    time_zone: str | None = Field(default=None, examples=["Europe/Berlin"])
    tariff: dict[str, Any] | None = Field(
        default=None, examples=[EXAMPLE_TARIFF],
        description="Currency and versions of time-of-use prices (local times, effective_from a local date) with "
                    "a daily charge; validated, see energy_pipeline.tariffs")


class ConnectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ha_url: str | None = Field(default=None, description="Default: the saved or environment URL")
    ha_token: str | None = Field(default=None, description="Default: the saved or environment token")


class ConnectionOut(BaseModel):
    ok: bool
    ha_version: str | None = None
    time_zone: str | None = None
    location_name: str | None = None
    error: str | None = None
    error_code: Literal["not_configured", "invalid_url", "auth_invalid", "unreachable", "timeout", "ha_error",
                        "secret_key", "client_unavailable"] | None = None


class StoreHealth(BaseModel):
    name: str
    backend: str
    ok: bool
    error: str | None = None


class HealthOut(BaseModel):
    status: Literal["ok"]
    stores: list[StoreHealth]


class CheckOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    passed: bool | None = None
    checked_at: str | None = None


class StatusOut(BaseModel):
    time_zone: str
    home_assistant: dict[str, Any]
    stream: dict[str, Any]
    latest_statistics: dict[str, str | None] = Field(
        description="Last stored hour (start, local ISO) per tracked entity; null when none")
    stores: list[StoreHealth]
    checks: list[CheckOut]
