"""The one Dagster ``Definitions`` of energy_pipeline (code location ``energy_pipeline``)."""

import dagster as dg

from energy_pipeline.defs.ha_statistics import assets as ha_assets
from energy_pipeline.defs.ha_statistics import checks as ha_checks
from energy_pipeline.defs.ha_statistics import schedules as ha_schedules
from energy_pipeline.defs.live_events import checks as live_checks
from energy_pipeline.defs.live_events import jobs as live_jobs
from energy_pipeline.defs.migration import assets as migration_assets
from energy_pipeline.defs.resources import build_resources

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([ha_assets, migration_assets]),
    asset_checks=dg.load_asset_checks_from_modules([ha_checks, live_checks, migration_assets]),
    jobs=[
        ha_schedules.energy_entities_job,
        ha_schedules.hourly_energy_statistics_job,
        ha_schedules.daily_energy_summary_job,
        migration_assets.legacy_migration_job,
        live_jobs.ha_event_stream_job,
    ],
    schedules=[ha_schedules.hourly_energy_statistics_schedule],
    sensors=[live_jobs.ha_event_stream_sensor, live_jobs.hourly_statistics_generated_sensor],
    resources=build_resources(),
)
