"""The one Dagster ``Definitions`` of energy_pipeline (code location ``energy_pipeline``)."""

import dagster as dg

from energy_pipeline.defs.ha_statistics import assets as ha_assets
from energy_pipeline.defs.ha_statistics import checks as ha_checks
from energy_pipeline.defs.ha_statistics import schedules as ha_schedules
from energy_pipeline.defs.migration import assets as migration_assets
from energy_pipeline.defs.resources import build_resources

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([ha_assets, migration_assets]),
    asset_checks=dg.load_asset_checks_from_modules([ha_checks, migration_assets]),
    jobs=[
        ha_schedules.energy_entities_job,
        ha_schedules.hourly_energy_statistics_job,
        ha_schedules.daily_energy_summary_job,
        migration_assets.legacy_migration_job,
    ],
    schedules=[ha_schedules.hourly_energy_statistics_schedule],
    resources=build_resources(),
)
