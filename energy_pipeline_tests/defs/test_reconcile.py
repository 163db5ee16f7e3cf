"""Live readings vs HA's hourly change: the meter arithmetic, and the check on simulator data."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from energy_pipeline.defs.ha_statistics.assets import energy_entities, hourly_energy_statistics
from energy_pipeline.defs.live_events.checks import (
    consumption_from_readings,
    meter_consumption,
    readings_reconcile_with_statistics,
)
from energy_pipeline.homeassistant.client import HomeAssistantSyncClient
from energy_pipeline.simulator.house import SimulatedHouse
from energy_pipeline.simulator.server import HomeAssistantSimulator
from energy_pipeline.storage.timeseries import Reading
from energy_pipeline_tests.defs.test_ha_statistics import make_resources, run_range

TOKEN = "test-token"
NOW = datetime(2025, 10, 28, 12, 30, tzinfo=UTC)
HOURS = (datetime(2025, 10, 27, 6, tzinfo=UTC), datetime(2025, 10, 27, 11, tzinfo=UTC))  # the reset is at 09:17


def test_meter_consumption_is_reset_aware():
    assert meter_consumption([10.0, 10.5, 11.0]) == pytest.approx(1.0)
    assert meter_consumption([1000.0, 1000.4, 0.1, 0.3]) == pytest.approx(0.4 + 0.1 + 0.2)
    assert meter_consumption([10.0, 9.95]) == pytest.approx(-0.05)  # a small dip is not a reset


def test_consumption_needs_a_baseline_and_a_reading_inside_the_hour():
    t = datetime(2025, 1, 1, 10, tzinfo=UTC)
    readings = [Reading(t - timedelta(minutes=5), "s", 1.0), Reading(t + timedelta(minutes=20), "s", 1.5),
                Reading(t + timedelta(minutes=59), "s", 2.0), Reading(t + timedelta(hours=1), "s", 9.0)]
    assert consumption_from_readings(readings, t, t + timedelta(hours=1)) == pytest.approx(1.0)
    assert consumption_from_readings(readings[1:], t, t + timedelta(hours=1)) is None
    assert consumption_from_readings(readings[:1], t, t + timedelta(hours=1)) is None


@pytest.fixture(scope="module")
def simulator():
    house = SimulatedHouse(seed=3, days=6, tz="Europe/Berlin", now=NOW, reset_at=datetime(2025, 10, 27, 9, 17,
                                                                                            tzinfo=UTC))
    sim = HomeAssistantSimulator(house, token=TOKEN).start()
    yield sim
    sim.stop()


def history_readings(sim, entity_ids, start, end) -> list[Reading]:
    with HomeAssistantSyncClient(sim.url, TOKEN) as client:
        history = client.history_during_period(entity_ids, start, end)
    return [Reading(s.last_changed, s.entity_id, s.value) for states in history.values() for s in states
            if s.value is not None]


def reconcile(resources, first, last):
    result = run_range(resources, first, last, checks=[readings_reconcile_with_statistics])
    assert result.success
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def test_check_passes_on_consistent_data_and_warns_on_injected_drift(tmp_path, simulator):
    resources = make_resources(tmp_path, simulator.url)
    assert dg.materialize([energy_entities], resources=resources).success
    tracked = [e.entity_id for e in resources["documents"].store.list_entities(tracked=True)]
    store = resources["timeseries"].store
    # The raw states HA recorded are what the live stream would have stored.
    store.write_readings(history_readings(simulator, tracked, HOURS[0] - timedelta(hours=2), HOURS[1]))
    evaluation = reconcile(resources, HOURS[0], HOURS[1] - timedelta(hours=1))
    assert evaluation.passed, evaluation.metadata
    assert evaluation.metadata["hours_compared"].value == 5 * len(tracked)
    assert evaluation.metadata["hours_drifting"].value == 0

    hour = HOURS[0] + timedelta(hours=2)
    inside = [r for r in store.read_readings(["sensor.grid_import_energy"], hour, hour + timedelta(hours=1))]
    last = inside[-1]
    store.write_readings([Reading(last.ts, last.entity_id, last.value + 0.5)])  # a meter that jumped
    evaluation = reconcile(resources, HOURS[0], HOURS[1] - timedelta(hours=1))
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    table = evaluation.metadata["worst_hours"].value
    assert "sensor.grid_import_energy" in table and hour.isoformat() in table and "+0.5000" in table


def test_hours_without_readings_are_reported_apart_from_drift(tmp_path, simulator):
    resources = make_resources(tmp_path, simulator.url)
    assert dg.materialize([energy_entities], resources=resources).success
    evaluation = reconcile(resources, HOURS[0], HOURS[0] + timedelta(hours=1))
    assert evaluation.passed
    assert evaluation.metadata["hours_compared"].value == 0
    assert evaluation.metadata["hours_without_readings"].value > 0
    assert hourly_energy_statistics.key.to_user_string() == "hourly_energy_statistics"
