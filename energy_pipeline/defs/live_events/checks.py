"""Reconciliation of live readings with Home Assistant's official hourly statistics."""

import itertools
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

import dagster as dg

from energy_pipeline.defs.ha_statistics.assets import hourly_energy_statistics, tracked_entity_ids
from energy_pipeline.defs.ha_statistics.checks import RESET_FRACTION, check_window, record_result
from energy_pipeline.defs.ha_statistics.partitions import hourly_partitions_def
from energy_pipeline.defs.resources import DocumentsResource, TimeSeriesResource
from energy_pipeline.storage.timeseries import Reading

# How far back a reading may lie and still be the meter's value at the start of an hour.
BASELINE_LOOKBACK = timedelta(days=1)


class ReconcileConfig(dg.Config):
    relative_tolerance: float = 0.01  # 1 % of HA's change ...
    absolute_tolerance: float = 0.01  # ... or 0.01 kWh, whichever is larger


@dataclass(frozen=True)
class HourComparison:
    entity_id: str
    hour: datetime
    official: float
    from_readings: float

    @property
    def drift(self) -> float:
        return self.from_readings - self.official


def meter_consumption(values: list[float]) -> float:
    """Consumption along consecutive meter readings; a drop of 10 % or more is a reset (HA's rule), after
    which the meter counts from zero again, so the new reading itself is consumption."""
    total = 0.0
    for before, after in itertools.pairwise(values):
        total += after if after < RESET_FRACTION * before else after - before
    return total


def consumption_from_readings(readings: list[Reading], start: datetime, end: datetime) -> float | None:
    """The meter's movement over ``[start, end)`` as HA compiles it: from the last reading before the
    hour to the last reading inside it. None when there is no reading inside the hour or no baseline."""
    baseline = [r for r in readings if r.ts < start]
    inside = [r for r in readings if start <= r.ts < end]
    if not inside or not baseline:
        return None
    return meter_consumption([baseline[-1].value, *(r.value for r in inside)])


def reconcile(readings: list[Reading], statistics: dict[tuple[str, datetime], float], entity_ids: list[str],
              hours: list[datetime]) -> tuple[list[HourComparison], list[tuple[str, datetime]]]:
    """Compare every (entity, hour) that has an official change; returns comparisons and hours without readings
    (where HA counted consumption but no reading arrived: the stream was not running, not drift)."""
    by_entity: dict[str, list[Reading]] = defaultdict(list)
    for reading in sorted(readings, key=lambda r: r.ts):
        by_entity[reading.entity_id].append(reading)
    compared, without = [], []
    for entity in entity_ids:
        for hour in hours:
            official = statistics.get((entity, hour))
            if official is None:
                continue
            measured = consumption_from_readings(by_entity[entity], hour, hour + timedelta(hours=1))
            if measured is None and official == 0 and any(r.ts < hour for r in by_entity[entity]):
                measured = 0.0  # an idle meter sends no events: no readings is the right answer
            if measured is None:
                without.append((entity, hour))
            else:
                compared.append(HourComparison(entity, hour, official, measured))
    return compared, without


@dg.asset_check(
    asset=hourly_energy_statistics,
    partitions_def=hourly_partitions_def,
    description="Live readings reconcile with HA's official hourly change: per tracked entity and hour, the "
    "meter's movement in the stored readings (reset-aware) is within 1 % or 0.01 of HA's change (configurable). "
    "Drift beyond that warns and lists the worst hours; hours without readings are reported separately.",
)
def readings_reconcile_with_statistics(
    context: dg.AssetCheckExecutionContext, config: ReconcileConfig, timeseries: TimeSeriesResource,
    documents: DocumentsResource,
) -> dg.AssetCheckResult:
    start, end = check_window(context)
    entity_ids = tracked_entity_ids(documents)
    statistics = {(r.entity_id, r.ts): r.change for r in timeseries.store.read_statistics(entity_ids, start, end)
                  if r.change is not None}
    readings = timeseries.store.read_readings(entity_ids, start - BASELINE_LOOKBACK, end)
    hours = sorted({hour for _, hour in statistics})
    compared, without = reconcile(readings, statistics, entity_ids, hours)
    drifting = [c for c in compared
                if abs(c.drift) > max(config.relative_tolerance * abs(c.official), config.absolute_tolerance)]
    drifting.sort(key=lambda c: -abs(c.drift))
    metadata: dict[str, object] = {
        "hours_compared": len(compared), "hours_drifting": len(drifting), "hours_without_readings": len(without),
        "max_abs_drift": round(max((abs(c.drift) for c in compared), default=0.0), 6),
        "tolerance": f"{config.relative_tolerance:.1%} or {config.absolute_tolerance}",
    }
    if drifting:
        rows = [f"| {c.entity_id} | {c.hour.isoformat()} | {c.official:.4f} | {c.from_readings:.4f} | {c.drift:+.4f} |"
                for c in drifting[:20]]
        metadata["worst_hours"] = dg.MetadataValue.md(
            "| entity | hour (UTC) | HA change | from readings | drift |\n|---|---|---|---|---|\n" + "\n".join(rows))
    if without:
        per_entity: dict[str, int] = defaultdict(int)
        for entity, _ in without:
            per_entity[entity] += 1
        metadata["hours_without_readings_by_entity"] = dg.MetadataValue.json(dict(per_entity))
    if drifting:
        result = dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN, metadata=metadata,
                                     description=f"{len(drifting)} of {len(compared)} hours drift beyond tolerance")
    else:
        result = dg.AssetCheckResult(passed=True, metadata=metadata,
                                     description=f"{len(compared)} hours reconcile; {len(without)} without readings")
    return record_result(documents, "readings_reconcile_with_statistics", result, start, end)
