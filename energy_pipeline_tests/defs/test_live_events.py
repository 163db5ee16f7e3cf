"""The live stream over real sockets: delivery, reconnect and gap fill, dead pings, store outages, cancel."""

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from energy_pipeline.defs.live_events.ingest import EventIngestor, StreamSettings
from energy_pipeline.homeassistant.models import HAState, StateChangedEvent
from energy_pipeline.simulator.house import SimulatedHouse
from energy_pipeline.simulator.server import HomeAssistantSimulator, wait_for
from energy_pipeline.storage.documents import EntityRecord
from energy_pipeline.storage.sqlite_documents import SQLiteDocumentStore
from energy_pipeline.storage.sqlite_timeseries import SQLiteTimeSeriesStore
from energy_pipeline.storage.timeseries import StoreUnavailableError

TOKEN = "stream-token"
FAST = dict(heartbeat_interval=0.5, heartbeat_timeout=0.5, backoff_initial=0.2, backoff_max=1.0,
            entity_refresh_interval=0.5)


@pytest.fixture
def live(tmp_path):
    house = SimulatedHouse(seed=5, days=2, unavailable_probability=0.0)
    sim = HomeAssistantSimulator(house, token=TOKEN, event_rate=4.0).start()
    timeseries = SQLiteTimeSeriesStore(tmp_path / "timeseries.sqlite3")
    timeseries.ensure_schema()
    documents = SQLiteDocumentStore(tmp_path / "documents.sqlite3")
    documents.ensure_schema()
    documents.upsert_entities([EntityRecord(entity_id=e.entity_id) for e in house.meters])
    yield sim, timeseries, documents, tmp_path
    sim.stop()


def streaming_since(documents) -> datetime:
    """Waits for the first subscription; events before it were never sent to us (no gap to fill yet)."""
    assert wait_for(lambda: documents.get_stream_state().get("status") == "streaming", 10)
    return documents.get_stream_state()["connected_since"] + timedelta(seconds=0.5)


class Runner:
    """The ingestor in a background thread, as the Dagster op runs it."""

    def __init__(self, ingestor: EventIngestor):
        self.ingestor = ingestor
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            self.ingestor.run()
        except BaseException as exc:
            self.error = exc

    def __enter__(self):
        self.started = datetime.now(UTC)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.ingestor.stop()
        self.thread.join(20)
        assert not self.thread.is_alive()
        assert self.error is None, self.error


def numeric_keys(sim, entity_ids, since, until):
    return {(r.entity_id, r.time) for r in sim.emitted_readings(entity_ids, since=since, until=until)
            if r.value is not None}


def stored_keys(timeseries, since, until):
    return [(r.entity_id, r.ts) for r in timeseries.read_readings(None, since, until)]


def test_events_reach_the_store_within_seconds(live):
    sim, timeseries, documents, home = live
    ingestor = EventIngestor(sim.url, TOKEN, timeseries, documents, home / "spill", StreamSettings(**FAST))
    with Runner(ingestor) as runner:
        assert wait_for(lambda: documents.get_stream_state().get("status") == "streaming", 10)
        time.sleep(1.0)
        emitted = sim.emitted_readings(None, since=runner.started)
        assert emitted, "the simulator emits events"
        newest = max(r.time for r in emitted if r.value is not None)
        assert wait_for(lambda: any(ts >= newest for _, ts in stored_keys(timeseries, newest, newest
                                                                              + timedelta(seconds=1))), 5)
    state = documents.get_stream_state()
    assert state["status"] == "stopped" and state["events_written"] > 0 and state["last_heartbeat"]


def test_dropped_connection_and_restart_with_gap_store_every_reading_exactly_once(live):
    sim, timeseries, documents, home = live
    entity_ids = sorted(e.entity_id for e in documents.list_entities())
    ingestor = EventIngestor(sim.url, TOKEN, timeseries, documents, home / "spill", StreamSettings(**FAST))
    with Runner(ingestor):
        since = streaming_since(documents)
        time.sleep(1.0)
        sim.drop_connections()
        time.sleep(1.0)
        sim.restart(gap_seconds=2.0, wait=True)  # HA down for 2 s: events produced meanwhile only in history
        assert wait_for(lambda: ingestor.stream.reconnects >= 2
                          and documents.get_stream_state().get("status") == "streaming", 15)
        time.sleep(1.5)
        until = datetime.now(UTC) - timedelta(seconds=1)
        assert wait_for(lambda: numeric_keys(sim, entity_ids, since, until)
                        <= set(stored_keys(timeseries, since, until)), 10)
    expected = numeric_keys(sim, entity_ids, since, until)
    stored = stored_keys(timeseries, since, until)
    assert set(stored) == expected
    assert len(stored) == len(set(stored)), "every reading exactly once"
    assert ingestor.gap_filled > 0
    assert documents.get_stream_state()["reconnects"] >= 2


def test_unanswered_pings_make_the_stream_reconnect(live):
    sim, timeseries, documents, home = live
    ingestor = EventIngestor(sim.url, TOKEN, timeseries, documents, home / "spill", StreamSettings(**FAST))
    with Runner(ingestor):
        assert wait_for(lambda: documents.get_stream_state().get("status") == "streaming", 10)
        sim.stop_answering_pings(True)
        assert wait_for(lambda: ingestor.stream.reconnects >= 1, 10)
        sim.stop_answering_pings(False)
        assert wait_for(lambda: documents.get_stream_state().get("status") == "streaming", 10)
    assert "no pong" in (documents.get_stream_state().get("last_error") or "")


class FlakyReadings(SQLiteTimeSeriesStore):
    """The real SQLite store whose reading writes fail while ``down`` is set (a store outage)."""

    down = False

    def write_readings(self, rows):
        if self.down:
            raise StoreUnavailableError("store unreachable (test)")
        return super().write_readings(rows)


def test_store_outage_loses_nothing(live):
    sim, _, documents, home = live
    timeseries = FlakyReadings(home / "flaky.sqlite3")
    timeseries.ensure_schema()
    entity_ids = sorted(e.entity_id for e in documents.list_entities())
    ingestor = EventIngestor(sim.url, TOKEN, timeseries, documents, home / "spill",
                             StreamSettings(**FAST, max_memory=10))
    with Runner(ingestor):
        since = streaming_since(documents)
        timeseries.down = True
        time.sleep(2.5)
        assert ingestor.buffer.stats.failed_writes > 0 and ingestor.buffer.stats.spilled > 0
        timeseries.down = False
        time.sleep(2.0)
        until = datetime.now(UTC) - timedelta(seconds=1)
        assert wait_for(lambda: numeric_keys(sim, entity_ids, since, until)
                        <= set(stored_keys(timeseries, since, until)), 10)


def test_untracking_an_entity_takes_effect_without_restart(live):
    sim, timeseries, documents, home = live
    ingestor = EventIngestor(sim.url, TOKEN, timeseries, documents, home / "spill", StreamSettings(**FAST))
    with Runner(ingestor):
        assert wait_for(lambda: documents.get_stream_state().get("status") == "streaming", 10)
        documents.set_tracked("sensor.grid_import_energy", False)
        time.sleep(1.5)  # two refresh intervals
        cut = datetime.now(UTC)
        time.sleep(1.5)
    after = [e for e, _ in stored_keys(timeseries, cut, datetime.now(UTC))]
    assert after and "sensor.grid_import_energy" not in after


def test_non_numeric_states_are_counted_not_written(live):
    _, timeseries, documents, home = live
    ingestor = EventIngestor("http://127.0.0.1:1", TOKEN, timeseries, documents, home / "spill")
    now = datetime.now(UTC)
    for text, value in (("unavailable", None), ("unknown", None), ("12.5", 12.5), ("garbage", None)):
        state = HAState(entity_id="sensor.x", state=text, value=value, last_changed=now, last_updated=now)
        ingestor._on_event(StateChangedEvent(entity_id="sensor.x", new_state=state, old_state=None))
        now += timedelta(seconds=1)
    ingestor.close()
    assert ingestor.non_numeric_skipped == 3
    assert [r.value for r in timeseries.read_readings(["sensor.x"], now - timedelta(minutes=1), now)] == [12.5]
    assert documents.get_stream_state()["non_numeric_skipped"] == 3


def test_cancelling_the_dagster_run_flushes_the_buffer(live):
    """A real `dagster job execute` run in its own process, terminated with SIGTERM as the UI does."""
    sim, timeseries, documents, home = live
    entity_ids = sorted(e.entity_id for e in documents.list_entities())
    dagster_home = home / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    config = home / "run.yaml"
    # Batches of 1 s are the default; here nothing is written before the end, so only the flush can save it.
    config.write_text("ops:\n  stream_state_changes:\n    config:\n      max_delay: 3600\n      max_batch: 1000000\n"
                      "      heartbeat_interval: 0.5\n      heartbeat_timeout: 0.5\n")
    env = dict(os.environ, DAGSTER_HOME=str(dagster_home), ENERGY_PIPELINE_HOME=str(home), HA_URL=sim.url,
               HA_TOKEN=TOKEN)
    started = datetime.now(UTC)
    process = subprocess.Popen(
        [sys.executable, "-m", "dagster", "job", "execute", "-m", "energy_pipeline.definitions", "-j",
         "ha_event_stream_job", "-c", str(config)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True)
    try:
        assert wait_for(lambda: documents.get_stream_state().get("status") == "streaming", 60), \
            process.stdout.read1().decode() if process.poll() is not None else "not streaming"
        since = documents.get_stream_state()["connected_since"] + timedelta(seconds=0.5)
        time.sleep(2.0)
        assert timeseries.read_readings(None, started, datetime.now(UTC)) == []
        os.killpg(process.pid, signal.SIGTERM)
        output = process.communicate(timeout=120)[0].decode()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    stopped = datetime.now(UTC)
    stored = set(stored_keys(timeseries, started, stopped))
    assert stored, output[-3000:]
    state = documents.get_stream_state()
    assert (state["status"], state["buffered"]) == ("stopped", 0), output[-4000:]
    # Everything received between subscribing and the stop was written by the final flush.
    last = max(ts for _, ts in stored)
    assert numeric_keys(sim, entity_ids, since, last) <= stored
