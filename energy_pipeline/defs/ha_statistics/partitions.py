"""Partitions of the statistics assets: UTC hours, and days in the house's time zone."""


import json
import logging
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from energy_pipeline.config import Config, load_config

log = logging.getLogger(__name__)

DEFAULT_HISTORY_DAYS = 30
INSTALL_FILE = "install.json"


def statistics_start_date(config: Config) -> date:
    """``ENERGY_PIPELINE_START_DATE`` when set; else 30 days before the first run, remembered in
    ``$ENERGY_PIPELINE_HOME/install.json`` so the partition set does not slide every day."""
    if config.start_date:
        return config.start_date
    marker = config.home / INSTALL_FILE
    try:
        return date.fromisoformat(json.loads(marker.read_text())["statistics_start_date"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    start = datetime.now(UTC).date() - timedelta(days=DEFAULT_HISTORY_DAYS)
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"statistics_start_date": start.isoformat()}))
    except OSError as exc:  # read-only home: still usable, only not remembered
        log.warning("could not remember the statistics start date in %s: %s", marker, exc)
    return start


def house_time_zone(config: Config) -> str:
    """The zone of day/week/month buckets, resolved as the API resolves it (saved override,
    ``ENERGY_PIPELINE_TIME_ZONE``, HA's zone from the last discovery, UTC)."""
    try:
        from energy_pipeline.storage.factory import open_documents
        from energy_pipeline.storage.secrets import SettingsService

        store = open_documents(config)
        store.ensure_schema()
        service = SettingsService(store, config)
        time_zone = service.effective_time_zone(store.get_settings().get("ha_time_zone"))
        store.close()
        return time_zone
    except Exception as exc:  # the definitions must load even when the store is down
        log.warning("time zone: document store not readable (%s); using %s", exc, config.time_zone or "UTC")
        return config.time_zone or "UTC"


def utc_time_window(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> tuple[datetime, datetime]:
    """The run's partition time window (one partition or a backfill range) as aware UTC datetimes."""
    window = context.partition_time_window
    return window.start.astimezone(UTC), window.end.astimezone(UTC)


def hourly_partitions(config: Config) -> dg.HourlyPartitionsDefinition:
    start = statistics_start_date(config)
    return dg.HourlyPartitionsDefinition(start_date=f"{start.isoformat()}-00:00", timezone="UTC")


def daily_partitions(config: Config) -> dg.DailyPartitionsDefinition:
    start = statistics_start_date(config)
    return dg.DailyPartitionsDefinition(start_date=start.isoformat(), timezone=house_time_zone(config))


_CONFIG = load_config()
hourly_partitions_def = hourly_partitions(_CONFIG)
daily_partitions_def = daily_partitions(_CONFIG)
