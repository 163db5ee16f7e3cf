"""The simulator's socket behaviour: live events, fault injection, restart, CLI."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from energy_pipeline.simulator.house import SimulatedHouse
from energy_pipeline.simulator.server import HomeAssistantSimulator, wait_for
from energy_pipeline_tests.simulator.conftest import TOKEN


async def _session(url: str, token: str = TOKEN) -> tuple[ClientConnection, dict[str, Any]]:
    ws = await connect(url, ping_interval=None)
    await ws.recv()
    await ws.send(json.dumps({"type": "auth", "access_token": token}))
    return ws, json.loads(await ws.recv())


async def _call(ws: ClientConnection, message: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    await ws.send(json.dumps(message))
    async with asyncio.timeout(timeout):
        while True:
            reply = json.loads(await ws.recv())
            if reply.get("type") != "event" and reply.get("id") == message["id"]:
                return reply


def test_wrong_path_is_a_404(simulator: HomeAssistantSimulator) -> None:
    async def main() -> None:
        with pytest.raises(InvalidStatus) as caught:
            await connect(simulator.url.replace("/api/websocket", "/other"))
        assert caught.value.response.status_code == 404

    asyncio.run(main())


def test_live_events_are_the_readings_the_house_produced(simulator: HomeAssistantSimulator) -> None:
    wanted = {"sensor.grid_import_energy", "sensor.heat_pump_energy"}

    async def main() -> list[dict[str, Any]]:
        ws, auth = await _session(simulator.url)
        assert auth["type"] == "auth_ok"
        assert (await _call(ws, {"id": 1, "type": "subscribe_events", "event_type": "state_changed"}))["result"] is None
        events: list[dict[str, Any]] = []
        async with asyncio.timeout(10):
            while len(events) < 20:
                message = json.loads(await ws.recv())
                if message["event"]["data"]["entity_id"] in wanted:
                    events.append(message["event"])
        await ws.close()
        return events

    events = asyncio.run(main())
    first = datetime.fromisoformat(events[0]["time_fired"])
    last = datetime.fromisoformat(events[-1]["time_fired"])
    produced = simulator.emitted_readings(sorted(wanted), since=first, until=last + timedelta(microseconds=1))
    received = [(e["data"]["entity_id"], datetime.fromisoformat(e["data"]["new_state"]["last_changed"]),
                 e["data"]["new_state"]["state"]) for e in events]
    assert sorted(received) == sorted((r.entity_id, r.time, r.state) for r in produced)
    for event in events[1:]:
        old, new = event["data"]["old_state"], event["data"]["new_state"]
        assert old is not None and old["last_changed"] < new["last_changed"]


def test_reject_tokens_and_wrong_token(simulator: HomeAssistantSimulator) -> None:
    async def main() -> None:
        _, auth = await _session(simulator.url, "wrong")
        assert auth == {"type": "auth_invalid", "message": "Invalid access token or password"}
        simulator.reject_tokens(True)
        _, auth = await _session(simulator.url)
        assert auth["type"] == "auth_invalid"
        simulator.reject_tokens(False)
        ws, auth = await _session(simulator.url)
        assert auth["type"] == "auth_ok"
        await ws.close()

    asyncio.run(main())
    assert simulator.auth_failures == 2


def test_fail_command_and_reply_delay(simulator: HomeAssistantSimulator) -> None:
    simulator.fail_command("get_config", "home_assistant_error", "Simulated failure", times=2)

    async def main() -> None:
        ws, _ = await _session(simulator.url)
        for message_id in (1, 2):
            reply = await _call(ws, {"id": message_id, "type": "get_config"})
            assert reply["error"] == {"code": "home_assistant_error", "message": "Simulated failure"}
        assert (await _call(ws, {"id": 3, "type": "get_config"}))["success"] is True
        simulator.set_reply_delay(0.4)
        started = time.monotonic()
        assert (await _call(ws, {"id": 4, "type": "ping"}))["type"] == "pong"
        assert time.monotonic() - started >= 0.35
        simulator.set_reply_delay(0)
        await ws.close()

    asyncio.run(main())
    assert [m["type"] for m in simulator.requests()][:3] == ["get_config"] * 3


def test_unanswered_pings_and_dropped_connections(simulator: HomeAssistantSimulator) -> None:
    async def main() -> None:
        ws, _ = await _session(simulator.url)
        simulator.stop_answering_pings(True)
        await ws.send(json.dumps({"id": 1, "type": "ping"}))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.5)
        simulator.stop_answering_pings(False)
        assert (await _call(ws, {"id": 2, "type": "ping"}))["type"] == "pong"
        simulator.drop_connections()
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(5):
                while True:
                    await ws.recv()

    asyncio.run(main())


def test_restart_comes_back_on_the_same_port(simulator: HomeAssistantSimulator) -> None:
    port = simulator.port
    before = simulator.house.now()
    done = simulator.restart(0.6)
    assert wait_for(lambda: not simulator.listening, 2)

    async def refused() -> None:
        with pytest.raises(OSError):
            await connect(simulator.url, open_timeout=1)

    asyncio.run(refused())
    done.result(5)
    assert simulator.port == port and simulator.listening

    async def back() -> None:
        ws, auth = await _session(simulator.url)
        assert auth["type"] == "auth_ok"
        await ws.close()

    asyncio.run(back())
    during = simulator.emitted_readings(["sensor.grid_import_energy"], since=before)
    assert during and during[-1].time - during[0].time >= timedelta(seconds=0.4), "the house kept producing"


def test_statistics_generated_events_and_new_rows() -> None:
    """At 300x speed a 5-minute period passes in a second: HA's recorder event fires, rows appear."""
    origin = time.time()
    clock = lambda: origin + (time.time() - origin) * 300  # noqa: E731
    house = SimulatedHouse(seed=9, days=2, clock=clock, compile_delay=1.0)
    with HomeAssistantSimulator(house, token=TOKEN) as sim:
        async def main() -> None:
            ws, _ = await _session(sim.url)
            await _call(ws, {"id": 1, "type": "subscribe_events", "event_type": "recorder_5min_statistics_generated"})
            async with asyncio.timeout(5):
                event = json.loads(await ws.recv())
            assert event["event"]["event_type"] == "recorder_5min_statistics_generated"
            assert event["event"]["data"] == {} and event["id"] == 1
            now = house.now()
            reply = await _call(ws, {"id": 2, "type": "recorder/statistics_during_period", "period": "5minute",
                                     "start_time": (now - timedelta(minutes=10)).isoformat(),
                                     "statistic_ids": ["sensor.grid_import_energy"]})
            last_end = reply["result"]["sensor.grid_import_energy"][-1]["end"]
            assert now.timestamp() * 1000 - last_end < 5 * 60 * 1000 + 2000
            await ws.close()

        asyncio.run(main())


def test_cli_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = dict(os.environ, ENERGY_PIPELINE_HOME=str(tmp_path))
    process = subprocess.Popen([sys.executable, "-m", "energy_pipeline.cli", "simulate-ha", "--port", "0", "--token",
                                TOKEN, "--days", "2", "--seed", "2", "--event-rate", "2"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("simulator listening on ws://127.0.0.1:"), line
        url = line.split()[-1]

        async def main() -> None:
            ws, auth = await _session(url)
            assert auth["type"] == "auth_ok"
            reply = await _call(ws, {"id": 1, "type": "get_config"})
            assert reply["result"]["time_zone"] == "Europe/Berlin"
            await ws.close()

        asyncio.run(main())
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        assert "stopping the simulator" in (process.stderr.read() if process.stderr else "")
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def test_requests_log_is_thread_safe_snapshot(simulator: HomeAssistantSimulator) -> None:
    async def main() -> None:
        ws, _ = await _session(simulator.url)
        for i in range(1, 6):
            await _call(ws, {"id": i, "type": "ping"})
        await ws.close()

    asyncio.run(main())
    assert len(simulator.requests("ping")) == 5
    simulator.clear_requests()
    assert simulator.requests() == []
    assert datetime.now(UTC) - simulator.house.now() < timedelta(seconds=5)
