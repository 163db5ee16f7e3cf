from datetime import UTC, datetime, timedelta

from energy_pipeline.storage.reading_buffer import ReadingBuffer
from energy_pipeline.storage.sqlite_timeseries import SQLiteTimeSeriesStore
from energy_pipeline.storage.timeseries import Reading, StoreUnavailableError

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class FlakyStore:
    """The real SQLite store behind a switch that makes writes fail as an unreachable server would."""

    def __init__(self, store):
        self.store = store
        self.down = False
        self.calls = 0

    def write_readings(self, rows):
        self.calls += 1
        if self.down:
            raise StoreUnavailableError("store down (test)")
        return self.store.write_readings(rows)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def readings(n, offset=0):
    return [Reading(ts=T0 + timedelta(seconds=offset + i), entity_id="sensor.a", value=float(offset + i))
            for i in range(n)]


def stored(store):
    return store.read_readings(["sensor.a"], T0, T0 + timedelta(days=1))


def make(tmp_path, **kwargs):
    sqlite = SQLiteTimeSeriesStore(tmp_path / "ts.sqlite3")
    sqlite.ensure_schema()
    flaky, clock = FlakyStore(sqlite), Clock()
    buffer = ReadingBuffer(flaky, tmp_path / "spill", clock=clock, **kwargs)  # type: ignore[arg-type]
    return sqlite, flaky, clock, buffer


def test_batches_by_size_and_by_delay(tmp_path):
    sqlite, flaky, clock, buffer = make(tmp_path, max_batch=10, max_delay=1.0)
    assert buffer.add(readings(5)) == 0  # neither 10 readings nor 1 s yet
    assert flaky.calls == 0
    clock.now = 1.0
    assert buffer.add([]) == 5
    assert buffer.add(readings(10, offset=5)) == 10
    assert len(stored(sqlite)) == 15


def test_store_down_keeps_everything_and_retries_with_backoff(tmp_path):
    sqlite, flaky, clock, buffer = make(tmp_path, max_batch=5, max_delay=0.1, backoff_initial=1.0)
    flaky.down = True
    buffer.add(readings(5))
    assert buffer.stats.failed_writes == 1 and len(buffer) == 5
    calls = flaky.calls
    buffer.add(readings(5, offset=5))
    assert flaky.calls == calls  # backing off: no write attempted before the retry time
    flaky.down = False
    clock.now = 1.5
    assert buffer.flush_if_due() == 10
    assert [r.value for r in stored(sqlite)] == [float(i) for i in range(10)]


def test_memory_bound_spills_to_disk_and_replays_in_order_without_duplicates(tmp_path):
    sqlite, flaky, clock, buffer = make(tmp_path, max_batch=50, max_memory=20, max_delay=0.0)
    flaky.down = True
    for chunk in range(10):
        buffer.add(readings(10, offset=chunk * 10))
        clock.now += 100  # past any backoff
    assert buffer.stats.spilled >= 80
    assert buffer.spilled_count() + len(buffer._pending) == 100
    flaky.down = False
    clock.now += 100
    buffer.flush()
    values = [r.value for r in stored(sqlite)]
    assert values == [float(i) for i in range(100)]
    assert buffer.spilled_count() == 0 and len(buffer) == 0


def test_close_spills_what_cannot_be_written_and_a_new_buffer_replays_it(tmp_path):
    sqlite, flaky, clock, buffer = make(tmp_path, max_batch=100)
    flaky.down = True
    buffer.add(readings(7))
    buffer.close(deadline_s=0.0)
    assert buffer.spilled_count() == 7
    flaky.down = False
    again = ReadingBuffer(flaky, tmp_path / "spill", clock=clock)  # type: ignore[arg-type]
    assert again.due()
    assert again.flush() == 7
    assert len(stored(sqlite)) == 7
