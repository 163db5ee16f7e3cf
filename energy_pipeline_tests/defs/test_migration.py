"""The legacy energy.db migration: both time encodings, bad rows, HA wins, idempotence, the row-count check."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from energy_pipeline.defs.migration.assets import legacy_energy_statistics, migration_row_counts_match
from energy_pipeline.defs.resources import DocumentsResource, TimeSeriesResource
from energy_pipeline.simulator.legacy import make_legacy_database
from energy_pipeline.storage.timeseries import StatisticRow

# Two days across the January/February boundary: change must be derived across the month boundary too.
START = datetime(2025, 1, 30, tzinfo=UTC)
FEBRUARY = (datetime(2025, 2, 1, tzinfo=UTC), datetime(2025, 3, 1, tzinfo=UTC))
ENTITIES = ["sensor.legacy_a", "sensor.legacy_b"]


@pytest.fixture
def legacy(tmp_path, monkeypatch):
    spec = make_legacy_database(tmp_path / "energy.db", ENTITIES, START, 96, bad_fraction=0.05)
    monkeypatch.setenv("LEGACY_SQLITE_PATH", str(spec.path))
    resources = {"timeseries": TimeSeriesResource(home=str(tmp_path)),
                 "documents": DocumentsResource(home=str(tmp_path))}
    return spec, resources


def migrate(resources, *months: str, selection=None):
    """One run over the months, as a backfill with the single-run policy launches it."""
    selection = selection or dg.AssetSelection.assets(legacy_energy_statistics) | dg.AssetSelection.checks(
        migration_row_counts_match)
    defs = dg.Definitions(assets=[legacy_energy_statistics], asset_checks=[migration_row_counts_match],
                          resources=resources, jobs=[dg.define_asset_job("migrate", selection=selection)])
    tags = {"dagster/asset_partition_range_start": months[0], "dagster/asset_partition_range_end": months[-1]}
    return defs.resolve_job_def("migrate").execute_in_process(tags=tags, instance=dg.DagsterInstance.ephemeral())


def test_migration_of_a_month_writes_good_rows_and_lists_bad_ones(legacy):
    spec, resources = legacy
    result = migrate(resources, "2025-02-01")
    assert result.success
    store = resources["timeseries"].store
    rows = store.read_statistics(ENTITIES, *FEBRUARY)
    expected = {k: v for k, v in spec.good_hourly.items() if FEBRUARY[0] <= k[1] < FEBRUARY[1]}
    assert {(r.entity_id, r.ts): r.sum for r in rows} == expected
    assert all(r.source == "legacy" for r in rows)
    # The first February hour's change is measured against the last January row, not left empty.
    by_entity = {e: sorted((r for r in rows if r.entity_id == e), key=lambda r: r.ts) for e in ENTITIES}
    all_good = sorted(spec.good_hourly.items(), key=lambda kv: (kv[0][0], kv[0][1]))
    for entity, entity_rows in by_entity.items():
        first = entity_rows[0]
        previous_sum = max((v for (e, ts), v in all_good if e == entity and ts < first.ts))
        assert first.change == pytest.approx(first.sum - previous_sum)

    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["rows_written"].value == len(expected)
    assert metadata["rows_read"].value == metadata["rows_written"].value + metadata["rows_rejected"].value
    assert metadata["rows_without_readable_time"].value > 0
    assert "not-a-time" in metadata["rejected_rows"].value
    (check,) = result.get_asset_check_evaluations()
    assert check.passed, check.metadata

    entities = {e.entity_id: e for e in resources["documents"].store.list_entities()}
    assert set(ENTITIES) <= set(entities) and not any(entities[e].tracked for e in ENTITIES)


def test_migration_is_idempotent_and_home_assistant_wins(legacy):
    _, resources = legacy
    store = resources["timeseries"].store
    ha_hour = datetime(2025, 2, 2, 5, tzinfo=UTC)
    store.write_statistics([StatisticRow(ts=ha_hour, entity_id="sensor.legacy_a", change=0.42, sum=1.0,
                                         source="ha")])
    assert migrate(resources, "2025-01-01", "2025-02-01").success
    first = store.read_statistics(ENTITIES, START, FEBRUARY[1])
    result = migrate(resources, "2025-01-01", "2025-02-01")
    assert result.success
    assert store.read_statistics(ENTITIES, START, FEBRUARY[1]) == first
    (ha_row,) = [r for r in first if r.ts == ha_hour and r.entity_id == "sensor.legacy_a"]
    assert (ha_row.source, ha_row.change) == ("ha", 0.42)
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["superseded_by_ha"].value == 1
    assert all(c.passed for c in result.get_asset_check_evaluations())


def test_row_count_check_fails_when_stored_rows_went_missing(legacy):
    _, resources = legacy
    assert migrate(resources, "2025-02-01").success
    store = resources["timeseries"].store
    store.delete_statistics(["sensor.legacy_b"], FEBRUARY[0], FEBRUARY[0] + timedelta(hours=3))
    result = migrate(resources, "2025-02-01", selection=dg.AssetSelection.checks(migration_row_counts_match))
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed
    assert check.metadata["difference"].value == 3


def test_missing_legacy_path_is_a_clear_failure(tmp_path, monkeypatch):
    monkeypatch.delenv("LEGACY_SQLITE_PATH", raising=False)
    resources = {"timeseries": TimeSeriesResource(home=str(tmp_path)),
                 "documents": DocumentsResource(home=str(tmp_path))}
    with pytest.raises(dg.Failure, match="LEGACY_SQLITE_PATH is not set"):
        dg.materialize([legacy_energy_statistics], resources=resources, partition_key="2025-02-01")
