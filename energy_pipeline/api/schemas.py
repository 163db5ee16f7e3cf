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


# -- insights ---------------------------------------------------------------------------------------------

InsightPeriod = Literal["day", "week", "month"]
Basis = Literal["house", "devices", "entity"]


class NegativeChangeOut(BaseModel):
    entity_id: str
    start: str = Field(description="Hour start, local ISO 8601 with offset")
    change: float


class DataIssues(BaseModel):
    """What was left out, so that no figure is silently wrong."""

    negative_change_count: int = Field(description="Hours with a negative change, left out of every figure")
    negative_changes: list[NegativeChangeOut] = Field(description="The first 50 of them")
    incomplete_house_hours: int = Field(description="Hours where a meter of the house formula has no valid value; "
                                        "left out of the house's consumption")


class InsightBase(BaseModel):
    time_zone: str
    period: InsightPeriod | None = Field(description="The calendar bucket asked for; null for an explicit range")
    start: str = Field(description="Range start, local ISO 8601 with offset (inclusive)")
    end: str = Field(description="Range end (exclusive)")
    hours: int = Field(description="Length of the range in hours")
    unit: Literal["kWh"] = "kWh"
    issues: DataIssues


class HourOut(BaseModel):
    start: str
    end: str
    consumption: float


class ConsumerOut(BaseModel):
    rank: int
    entity_id: str
    name: str | None
    consumption: float
    hours: int = Field(description="Hours with a valid value")
    share: float | None = Field(description="consumption / total; null when the total is not positive")


class TopConsumersOut(InsightBase):
    total: float | None = Field(description="The house's consumption, or without grid import the devices' sum")
    total_basis: Literal["house", "devices"] | None
    devices_total: float
    device_count: int = Field(description="Devices with data in the range")
    consumers: list[ConsumerOut]


class EntityPeakOut(BaseModel):
    entity_id: str
    name: str | None
    role: str | None
    peak: HourOut | None


class PeakOut(InsightBase):
    overall: HourOut | None = Field(description="The hour with the highest house consumption")
    overall_basis: Literal["house", "devices"] | None
    entities: list[EntityPeakOut]


class BreakdownPart(BaseModel):
    entity_id: str
    name: str | None
    consumption: float
    share: float | None


class NegativeRestHourOut(BaseModel):
    start: str
    end: str
    house: float
    devices: float
    rest: float


class BreakdownOut(InsightBase):
    house: float | None = Field(description="grid import + solar − grid export + battery discharge − battery charge")
    components: dict[str, float] = Field(description="Energy per role of the formula over the same hours")
    devices: list[BreakdownPart]
    devices_total: float
    rest: float | None = Field(description="house − devices; negative when the meters disagree (not clipped)")
    rest_share: float | None
    rest_negative: bool
    negative_rest_hour_count: int
    negative_rest_hours: list[NegativeRestHourOut] = Field(description="The first 50 hours with a negative rest")
    hours_used: int = Field(description="Hours in which the house's consumption is known")


class TimelineSeries(BaseModel):
    entity_id: str
    name: str | None
    role: str | None
    consumption: list[float | None] = Field(description="Aligned with buckets; null = no valid hour")


class TimelineOut(InsightBase):
    group_by: Literal["hour", "day"]
    buckets: list[Bucket]
    series: list[TimelineSeries]
    house: list[float | None] | None = Field(description="House consumption per bucket; null without grid import")
    rest: list[float | None] | None = Field(description="house − the series shown, per bucket")


class HeatCellOut(BaseModel):
    weekday: int = Field(description="0 = Monday")
    hour: int = Field(description="Local hour of day")
    average: float | None
    samples: int = Field(description="Local days in the range that have this slot")


class HeatmapOut(InsightBase):
    entity_id: str | None
    basis: Basis | None
    cells: list[HeatCellOut] = Field(description="7 x 24 cells, Monday 00:00 first")
    max_average: float | None


class NightOut(BaseModel):
    date: str
    minimum: float | None = Field(description="kWh of the lowest hour 00:00-05:00; null when the window is incomplete")
    hours: int
    hours_expected: int


class BaseloadOut(InsightBase):
    basis: Literal["house", "devices"] | None
    baseload_kw: float | None = Field(description="Median over the nights of the lowest hourly consumption")
    cost_per_year: float | None = Field(description="baseload_kw x 8760 h x the tariff's average price; null "
                                        "without a tariff in force today")
    currency: str | None
    average_price_per_kwh: float | None
    nights_used: int
    nights: list[NightOut]


class SelfSufficiencyValues(BaseModel):
    consumption: float | None
    grid_import: float | None
    solar: float | None
    battery_discharge: float | None
    self_sufficiency: float | None = Field(description="1 − grid_import / consumption, clipped to 0..1")
    battery_share: float | None
    solar_share: float | None


class SelfSufficiencyBucket(Bucket, SelfSufficiencyValues):
    pass


class SelfSufficiencyOut(InsightBase):
    group_by: Literal["hour", "day"]
    buckets: list[SelfSufficiencyBucket]
    total: SelfSufficiencyValues


# -- operations ---------------------------------------------------------------------------------------------


class SyncIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: str | None = Field(default=None, description="ISO 8601; naive = house time zone; default end - 24 h")
    end: str | None = Field(default=None, description="ISO 8601 (exclusive); default the start of the current "
                            "UTC hour")


class SyncOut(BaseModel):
    backfill_id: str
    partitions: list[str] = Field(description="Partition keys (UTC hours, %Y-%m-%d-%H:%M) of the backfill")
    partition_count: int
    asset: str
    start: str = Field(description="First hour, UTC ISO 8601")
    end: str = Field(description="End of the last hour, UTC ISO 8601")
    ui_url: str


class DiscoverOut(BaseModel):
    run_id: str
    job_name: str
    ui_url: str


class SyncLogEntryOut(BaseModel):
    type: Literal["run", "backfill"]
    id: str
    kind: Literal["statistics", "migration", "discovery"]
    assets: list[str]
    status: str = Field(description="Dagster's status (runs: QUEUED, STARTED, SUCCESS, FAILURE, CANCELED, ...; "
                        "backfills: REQUESTED, COMPLETED_SUCCESS, COMPLETED_FAILED, ...)")
    job_name: str | None
    backfill_id: str | None
    title: str | None
    partition_first: str | None
    partition_last: str | None
    partition_count: int | None
    hours_start: str | None = Field(description="Start of the data range covered, local ISO 8601")
    hours_end: str | None
    created_at: str | None
    started_at: str | None
    ended_at: str | None
    duration_s: float | None
    rows_written: int | None = Field(description="The materialization metadata rows_written (a backfill: sum "
                                     "over its runs)")
    entity_rows: int | None = Field(default=None, description="With entity_id: that entity's rows stored in the "
                                    "covered hours from this asset")
    error: str | None
    metadata: dict[str, Any]
    run_ids: list[str]
    ui_url: str


class SyncLogOut(BaseModel):
    source: Literal["dagster"] = "dagster"
    dagster_url: str
    entity_id: str | None
    entries: list[SyncLogEntryOut]
