"""``StateChangeStream`` against the simulator: drops, dead pings, restarts, auth failure, live entity sets."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from energy_pipeline.homeassistant.client import HomeAssistantClient
from energy_pipeline.homeassistant.models import (
    HomeAssistantAuthError,
    StateChangedEvent,
    StreamGap,
)
from energy_pipeline.homeassistant.stream import StateChangeStream
from energy_pipeline.simulator.server import HomeAssistantSimulator
from energy_pipeline_tests.homeassistant.conftest import TOKEN

IDS = {"sensor.grid_import_energy", "sensor.heat_pump_energy", "sensor.gas_meter"}
FAST = {"heartbeat_interval": 0.2, "heartbeat_timeout": 1.5, "backoff_initial": 0.05, "backoff_max": 0.2,
        "entity_refresh_interval": 0.2, "connect_timeout": 2.0, "command_timeout": 2.0}


class Recorder:
    """Collects what a stream yields and every status callback."""

    def __init__(self) -> None:
        self.events: list[StateChangedEvent] = []
        self.gaps: list[StreamGap] = []
        self.statuses: list[tuple[str, dict[str, Any]]] = []

    def on_status(self, status: str, **info: Any) -> None:
        self.statuses.append((status, info))

    def names(self) -> list[str]:
        return [s for s, _ in self.statuses]


async def _consume(stream: StateChangeStream, recorder: Recorder) -> None:
    async for item in stream:
        if isinstance(item, StreamGap):
            recorder.gaps.append(item)
        else:
            recorder.events.append(item)


async def _until(predicate: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def run(coro: Any, timeout: float = 40.0) -> Any:
    async def main() -> Any:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(main())


def _fill(simulator: HomeAssistantSimulator, gaps: list[StreamGap]) -> list[Any]:
    async def main() -> list[Any]:
        states = []
        async with HomeAssistantClient(simulator.url, TOKEN) as ha:
            for gap in gaps:
                result = await ha.history_during_period(sorted(IDS), gap.start, gap.end)
                states += [s for entity_states in result.values() for s in entity_states]
        return states

    return run(main())


def _assert_nothing_lost(simulator: HomeAssistantSimulator, recorder: Recorder) -> None:
    """Every reading produced while the stream was away is either streamed or in the gap's history."""
    first = min(e.new_state.last_changed for e in recorder.events if e.new_state)
    last = max(e.new_state.last_changed for e in recorder.events if e.new_state)
    produced = {(r.entity_id, r.time, r.state)
                for r in simulator.emitted_readings(sorted(IDS), since=first, until=last)}
    streamed = {(e.entity_id, e.new_state.last_changed, e.new_state.state) for e in recorder.events if e.new_state}
    history = {(s.entity_id, s.last_changed, s.state) for s in _fill(simulator, recorder.gaps)}
    missing = produced - streamed - history
    assert not missing, f"{len(missing)} readings lost, e.g. {sorted(missing)[:3]}"
    assert produced - streamed, "the outage really lost live events (otherwise this test proves nothing)"


def test_drop_mid_subscription_reconnects_resubscribes_and_reports_the_gap(
        simulator: HomeAssistantSimulator) -> None:
    recorder = Recorder()
    stream = StateChangeStream(simulator.url, TOKEN, lambda: set(IDS), on_status=recorder.on_status, **FAST)

    async def main() -> tuple[datetime, datetime]:
        task = asyncio.create_task(_consume(stream, recorder))
        await _until(lambda: len(recorder.events) >= 5)
        dropped = datetime.now(UTC)
        simulator.drop_connections()
        await _until(lambda: recorder.gaps and len(recorder.events) >= 15)
        reconnected = datetime.now(UTC)
        stream.stop()
        await task
        return dropped, reconnected

    dropped, reconnected = run(main())
    gap = recorder.gaps[0]
    assert gap.start <= dropped <= gap.end <= reconnected + timedelta(seconds=3)
    assert len(simulator.requests("subscribe_events")) == 2, "re-subscribed after the reconnect"
    names = recorder.names()
    assert names[:2] == ["connecting", "streaming"]
    assert "reconnecting" in names and names[-1] == "stopped"
    reconnecting = next(info for status, info in recorder.statuses if status == "reconnecting")
    assert reconnecting["last_error"] and "retry_in" in reconnecting
    assert stream.reconnects == 1 and stream.status == "stopped"
    assert {e.entity_id for e in recorder.events} <= IDS


def test_unanswered_pings_declare_the_connection_dead(simulator: HomeAssistantSimulator) -> None:
    recorder = Recorder()
    stream = StateChangeStream(simulator.url, TOKEN, lambda: set(IDS), on_status=recorder.on_status,
                               **{**FAST, "heartbeat_timeout": 0.4})

    async def main() -> None:
        task = asyncio.create_task(_consume(stream, recorder))
        await _until(lambda: stream.last_heartbeat is not None)
        simulator.stop_answering_pings(True)
        await _until(lambda: "reconnecting" in recorder.names())
        simulator.stop_answering_pings(False)
        await _until(lambda: recorder.gaps and stream.status == "streaming" and stream.last_heartbeat is not None
                     and stream.last_heartbeat > recorder.gaps[0].start)
        stream.stop()
        await task

    run(main())
    errors = [info["last_error"] for status, info in recorder.statuses if status == "reconnecting"]
    assert any("no pong within 0.4 s" in (e or "") for e in errors)
    assert stream.reconnects >= 1


def test_a_quiet_connection_with_pongs_stays_alive(simulator: HomeAssistantSimulator) -> None:
    recorder = Recorder()
    stream = StateChangeStream(simulator.url, TOKEN, lambda: {"sensor.does_not_exist"}, on_status=recorder.on_status,
                               **FAST)

    async def main() -> None:
        task = asyncio.create_task(_consume(stream, recorder))
        await asyncio.sleep(1.5)
        stream.stop()
        await task

    run(main())
    assert recorder.events == [] and recorder.gaps == []
    assert stream.reconnects == 0
    heartbeats = [info["last_heartbeat"] for status, info in recorder.statuses
                  if status == "streaming" and info["last_heartbeat"]]
    assert len(heartbeats) >= 4, "a pong every interval, reported through the status callback"


def test_restart_gap_is_filled_from_history(simulator: HomeAssistantSimulator) -> None:
    recorder = Recorder()
    stream = StateChangeStream(simulator.url, TOKEN, lambda: set(IDS), on_status=recorder.on_status, **FAST)

    async def main() -> None:
        task = asyncio.create_task(_consume(stream, recorder))
        await _until(lambda: len(recorder.events) >= 5)
        simulator.restart(1.0)
        await _until(lambda: recorder.gaps and recorder.events[-1].time_fired is not None
                     and recorder.events[-1].time_fired > recorder.gaps[0].end)
        stream.stop()
        await task

    run(main())
    gap = recorder.gaps[0]
    assert gap.end - gap.start >= timedelta(seconds=1)
    _assert_nothing_lost(simulator, recorder)


def test_bad_token_is_fatal(simulator: HomeAssistantSimulator) -> None:
    recorder = Recorder()
    stream = StateChangeStream(simulator.url, "wrong-token", lambda: set(IDS), on_status=recorder.on_status, **FAST)
    with pytest.raises(HomeAssistantAuthError):
        run(_consume(stream, recorder))
    assert recorder.names() == ["connecting", "failed"]
    assert "token rejected" in recorder.statuses[-1][1]["last_error"]
    assert simulator.auth_failures == 1, "never retried"


def test_connection_errors_are_retried_with_capped_backoff(simulator: HomeAssistantSimulator) -> None:
    recorder = Recorder()
    stream = StateChangeStream(simulator.url, TOKEN, lambda: set(IDS), on_status=recorder.on_status, **FAST)

    async def main() -> None:
        simulator.restart(1.2)
        await _until(lambda: not simulator.listening)
        task = asyncio.create_task(_consume(stream, recorder))
        await _until(lambda: stream.status == "streaming", 10)
        stream.stop()
        await task

    run(main())
    delays = [info["retry_in"] for status, info in recorder.statuses if status == "reconnecting"]
    assert len(delays) >= 3
    assert all(0 < d <= FAST["backoff_max"] for d in delays)
    assert recorder.gaps == [], "nothing was streamed before, so nothing was missed"


def test_tracked_entities_change_without_restart(simulator: HomeAssistantSimulator) -> None:
    tracked = {"sensor.gas_meter"}
    recorder = Recorder()
    stream = StateChangeStream(simulator.url, TOKEN, lambda: set(tracked), on_status=recorder.on_status, **FAST)

    async def main() -> None:
        task = asyncio.create_task(_consume(stream, recorder))
        await _until(lambda: len(recorder.events) >= 2)
        tracked.clear()
        tracked.add("sensor.heat_pump_energy")
        await _until(lambda: recorder.events[-1].entity_id == "sensor.heat_pump_energy")
        await asyncio.sleep(0.3)
        stream.stop()
        await task

    run(main())
    switched = next(i for i, e in enumerate(recorder.events) if e.entity_id == "sensor.heat_pump_energy")
    assert {e.entity_id for e in recorder.events[switched:]} == {"sensor.heat_pump_energy"}
    assert len(simulator.requests("subscribe_events")) == 1, "filter changed on our side, no resubscribe"
    assert stream.entity_ids == {"sensor.heat_pump_energy"}


def test_resume_from_yields_a_first_gap_and_stop_from_another_thread(simulator: HomeAssistantSimulator) -> None:
    recorder = Recorder()
    since = datetime.now(UTC) - timedelta(minutes=5)
    stream = StateChangeStream(simulator.url, TOKEN, lambda: set(IDS), resume_from=since, gap_margin=0,
                               **FAST)

    async def main() -> None:
        task = asyncio.create_task(_consume(stream, recorder))
        await _until(lambda: len(recorder.events) >= 1)
        threading.Thread(target=stream.stop).start()
        await task

    run(main())
    assert recorder.gaps[0].start == since
    assert stream.status == "stopped"
    assert "token" not in repr(stream).lower() or TOKEN not in repr(stream)


def test_run_with_handler_and_provider_failure_keeps_old_set(simulator: HomeAssistantSimulator) -> None:
    calls = {"n": 0}

    def provider() -> set[str]:
        calls["n"] += 1
        if calls["n"] > 1:
            raise RuntimeError("database down")
        return {"sensor.gas_meter"}

    stream = StateChangeStream(simulator.url, TOKEN, provider, **FAST)
    seen: list[Any] = []

    async def handler(item: Any) -> None:
        seen.append(item)
        if len(seen) >= 4 and calls["n"] > 1:
            stream.stop()

    run(stream.run(handler))
    assert {e.entity_id for e in seen} == {"sensor.gas_meter"}
    assert stream.entity_ids == {"sensor.gas_meter"}


def test_stop_while_connecting_returns_at_once() -> None:
    import socket
    import time

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # TCP accepted, no WebSocket handshake ever
    recorder = Recorder()
    try:
        stream = StateChangeStream(f"http://127.0.0.1:{silent.getsockname()[1]}", TOKEN, lambda: set(IDS),
                                   on_status=recorder.on_status, connect_timeout=30)

        async def main() -> float:
            task = asyncio.create_task(_consume(stream, recorder))
            await _until(lambda: "connecting" in recorder.names())
            started = time.monotonic()
            stream.stop()
            await task
            return time.monotonic() - started

        assert run(main()) < 1.0
    finally:
        silent.close()
    assert recorder.names() == ["connecting", "stopped"]
