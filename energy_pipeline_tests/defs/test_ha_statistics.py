"""The statistics assets and checks, materialized in-process against the simulator and embedded stores."""

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from energy_pipeline.defs.ha_statistics.assets import (
    daily_energy_summary,
    energy_entities,
    hourly_energy_statistics,
)
from energy_pipeline.defs.ha_statistics.checks import (
    statistics_change_is_not_negative,
    statistics_have_no_duplicates,
    statistics_have_no_gaps,
)
from energy_pipeline.defs.ha_statistics.schedules import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    hourly_energy_statistics_schedule,
    hours_to_fetch,
)
from energy_pipeline.defs.resources import DocumentsResource, HomeAssistantResource, TimeSeriesResource
from energy_pipeline.homeassistant.client import HomeAssistantSyncClient
from energy_pipeline.simulator.house import SimulatedHouse
from energy_pipeline.simulator.server import HomeAssistantSimulator
from energy_pipeline.storage.timeseries import StatisticRow
from energy_pipeline_tests.conftest import free_port

TOKEN = "test-token"
# A fixed "now" two days after Europe/Berlin's autumn DST change (2025-10-26 has 25 hours).
NOW = datetime(2025, 10, 28, 12, 30, tzinfo=UTC)
RESET_AT = datetime(2025, 10, 27, 9, 17, tzinfo=UTC)
MISSING_HOUR = datetime(2025, 10, 27, 3, tzinfo=UTC)
CHECKS = [statistics_have_no_gaps, statistics_have_no_duplicates, statistics_change_is_not_negative]


def key(hour: datetime) -> str:
    return hour.strftime("%Y-%m-%d-%H:%M")


@pytest.fixture(scope="module")
def simulator():
    house = SimulatedHouse(seed=3, days=6, tz="Europe/Berlin", now=NOW, reset_at=RESET_AT,
                           missing_hours=[MISSING_HOUR])
    sim = HomeAssistantSimulator(house, token=TOKEN).start()
    yield sim
    sim.stop()


def make_resources(home: Path, url: str) -> dict:
    documents = DocumentsResource(home=str(home))
    return {
        "timeseries": TimeSeriesResource(home=str(home)),
        "documents": documents,
        "home_assistant": HomeAssistantResource(url=url, token=TOKEN, documents=documents, command_timeout=10),
    }


@pytest.fixture
def resources(tmp_path, simulator):
    res = make_resources(tmp_path, simulator.url)
    result = dg.materialize([energy_entities], resources=res)
    assert result.success
    return res


def ha_rows(simulator, entity_ids, start, end):
    with HomeAssistantSyncClient(simulator.url, TOKEN) as client:
        return client.statistics_during_period(entity_ids, start, end, period="hour")


def run_range(resources, first: datetime, last: datetime, assets=(hourly_energy_statistics,), checks=CHECKS,
              selection=None):
    selection = selection or dg.AssetSelection.assets(*assets) | dg.AssetSelection.checks(*checks)
    defs = dg.Definitions(assets=list(assets), asset_checks=list(checks), resources=resources,
                          jobs=[dg.define_asset_job("job", selection=selection)])
    job = defs.resolve_job_def("job")
    return job.execute_in_process(tags={RANGE_START_TAG: key(first), RANGE_END_TAG: key(last)},
                                  instance=dg.DagsterInstance.ephemeral())


def check_results(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_discovery_stores_entities_roles_and_keeps_user_choice(resources, simulator):
    store = resources["documents"].store
    entities = {e.entity_id: e for e in store.list_entities()}
    assert entities["sensor.grid_import_energy"].role == "grid_import"
    assert entities["sensor.solar_production_energy"].role == "solar"
    assert entities["sensor.heat_pump_energy"].role == "device"
    assert store.get_settings()["ha_time_zone"] == "Europe/Berlin"
    store.set_tracked("sensor.dishwasher_energy", False)
    assert dg.materialize([energy_entities], resources=resources).success
    assert store.get_entity("sensor.dishwasher_energy").tracked is False


def test_one_partition_stores_exactly_what_home_assistant_reports(resources, simulator):
    hour = datetime(2025, 10, 27, 14, tzinfo=UTC)
    result = dg.materialize([hourly_energy_statistics, *CHECKS], resources=resources, partition_key=key(hour))
    assert result.success
    tracked = [e.entity_id for e in resources["documents"].store.list_entities(tracked=True)]
    stored = resources["timeseries"].store.read_statistics(tracked, hour, hour + timedelta(hours=1))
    truth = ha_rows(simulator, tracked, hour, hour + timedelta(hours=1))
    assert len(stored) == len(tracked) == sum(len(v) for v in truth.values())
    for row in stored:
        (official,) = truth[row.entity_id]
        assert (row.ts, row.change, row.sum, row.state) == (official.start, official.change, official.sum,
                                                            official.state)
        assert row.source == "ha"
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["rows_written"].value == len(tracked)
    assert metadata["missing_hours"].value == 0


def test_range_backfill_in_one_run_is_idempotent_and_reports_missing_and_reset(resources, simulator):
    first, last = datetime(2025, 10, 25, 0, tzinfo=UTC), datetime(2025, 10, 27, 23, tzinfo=UTC)
    end = last + timedelta(hours=1)
    simulator.clear_requests()
    result = run_range(resources, first, last)
    assert result.success
    # 72 hours x 8 meters in one run, fetched in one HA call, not one per hour.
    assert len(simulator.requests("recorder/statistics_during_period")) == 1
    store = resources["timeseries"].store
    tracked = [e.entity_id for e in resources["documents"].store.list_entities(tracked=True)]
    before = store.read_statistics(tracked, first, end)
    assert len(before) == 72 * len(tracked) - len(tracked)  # HA never compiled MISSING_HOUR
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["missing_hours"].value == len(tracked)
    assert metadata["first_hour"].value == first.isoformat()

    checks = check_results(result)
    assert not checks["statistics_have_no_gaps"].passed
    assert "2025-10-27 03:00" in checks["statistics_have_no_gaps"].metadata["gaps"].value
    assert checks["statistics_have_no_duplicates"].passed
    resets = checks["statistics_change_is_not_negative"]
    assert not resets.passed and resets.severity == dg.AssetCheckSeverity.WARN
    assert "sensor.heat_pump_energy" in resets.description and "2025-10-27T09:00" in resets.description

    assert run_range(resources, first, last).success
    assert store.read_statistics(tracked, first, end) == before
    assert store.count_statistics(tracked, first, end) == {e: 71 for e in tracked}


def test_daily_summary_has_25_hours_on_the_autumn_dst_day(resources, simulator):
    first, last = datetime(2025, 10, 25, 22, tzinfo=UTC), datetime(2025, 10, 26, 22, tzinfo=UTC)
    assert run_range(resources, first, last).success
    defs = dg.Definitions(assets=[daily_energy_summary], resources=resources)
    assert dg.materialize([daily_energy_summary], resources=resources, partition_key="2025-10-26").success
    del defs
    store = resources["timeseries"].store
    day_start, day_end = datetime(2025, 10, 25, 22, tzinfo=UTC), datetime(2025, 10, 26, 23, tzinfo=UTC)
    summaries = {s.entity_id: s for s in store.read_daily_summaries(None, day_start, day_end)}
    hourly = store.read_statistics(None, day_start, day_end)
    grid = summaries["sensor.grid_import_energy"]
    assert grid.hours_expected == grid.hours_present == 25
    changes = [r.change for r in hourly if r.entity_id == "sensor.grid_import_energy"]
    assert grid.consumption == pytest.approx(sum(changes))
    assert grid.max_hourly == max(changes) and grid.min_hourly == min(changes)


def test_home_assistant_unreachable_fails_clearly_and_writes_nothing(tmp_path, resources):
    sock_port = free_port()
    res = dict(resources)
    res["home_assistant"] = HomeAssistantResource(url=f"http://127.0.0.1:{sock_port}", token=TOKEN,
                                                  documents=resources["documents"], command_timeout=2)
    hour = datetime(2025, 10, 27, 16, tzinfo=UTC)
    with pytest.raises(Exception, match=f"127.0.0.1:{sock_port}"):
        dg.materialize([hourly_energy_statistics], resources=res, partition_key=key(hour))
    assert resources["timeseries"].store.read_statistics(None, hour, hour + timedelta(hours=1)) == []


def test_missing_configuration_names_the_variables(tmp_path):
    documents = DocumentsResource(home=str(tmp_path))
    resource = HomeAssistantResource(documents=documents)
    with pytest.raises(dg.Failure, match="HA_URL and HA_TOKEN missing"):
        resource.connection()


def test_negative_change_outside_a_reset_fails_the_check(resources):
    hour = datetime(2025, 10, 24, 10, tzinfo=UTC)
    store = resources["timeseries"].store
    rows = [StatisticRow(ts=hour + timedelta(hours=h), entity_id="sensor.grid_import_energy",
                         change=c, sum=s, state=1000 + s) for h, (c, s) in enumerate([(1.0, 10.0), (-0.5, 9.5)])]
    store.write_statistics(rows)
    result = run_range(resources, hour + timedelta(hours=1), hour + timedelta(hours=1),
                       checks=[statistics_change_is_not_negative],
                       selection=dg.AssetSelection.checks(statistics_change_is_not_negative))
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert "-0.5" in evaluation.metadata["negative_hours"].value


def test_duplicates_check_fails_on_a_store_with_duplicate_keys(tmp_path, simulator):
    path = tmp_path / "timeseries.sqlite3"
    hour = datetime(2025, 10, 24, 10, tzinfo=UTC)
    micros = int(hour.timestamp()) * 1_000_000
    with sqlite3.connect(path) as conn:  # an old file without the unique key
        conn.execute("CREATE TABLE energy_statistics (ts INTEGER, entity_id TEXT, change REAL, sum REAL, "
                     "state REAL, mean REAL, min REAL, max REAL, source TEXT)")
        conn.executemany("INSERT INTO energy_statistics (ts, entity_id, change, source) VALUES (?, ?, ?, 'ha')",
                         [(micros, "sensor.a", 1.0), (micros, "sensor.a", 2.0)])
    res = make_resources(tmp_path, simulator.url)
    result = run_range(res, hour, hour, checks=[statistics_have_no_duplicates],
                       selection=dg.AssetSelection.checks(statistics_have_no_duplicates))
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed
    assert evaluation.metadata["duplicate_keys"].value == 1
    assert res["documents"].store.latest_check_results()["statistics_have_no_duplicates"]["passed"] is False


def test_schedule_fetches_the_hour_that_ended_and_the_one_before():
    assert hours_to_fetch(datetime(2025, 10, 27, 14, 12, tzinfo=UTC)) == ("2025-10-27-12:00", "2025-10-27-13:00")
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(scheduled_execution_time=datetime(2025, 10, 27, 14, 12, tzinfo=UTC),
                                           instance=instance)
        request = hourly_energy_statistics_schedule(context)
    assert request.tags[RANGE_START_TAG] == "2025-10-27-12:00"
    assert request.tags[RANGE_END_TAG] == "2025-10-27-13:00"
