"""The access token never appears in an exception, a log line (websockets frame logs included) or a repr."""

from __future__ import annotations

import asyncio
import logging
import socket
from datetime import UTC, datetime, timedelta

import pytest

from energy_pipeline.homeassistant.client import HomeAssistantClient, HomeAssistantSyncClient
from energy_pipeline.homeassistant.models import HomeAssistantError
from energy_pipeline.homeassistant.stream import StateChangeStream
from energy_pipeline.simulator.house import SimulatedHouse
from energy_pipeline.simulator.server import HomeAssistantSimulator

SECRET = "eyJhbGciOiJIUzI1NiJ9.very-secret-long-lived-token.QWERTY"
WRONG = "eyJhbGciOiJIUzI1NiJ9.wrong-but-still-secret.ASDFGH"


def test_token_never_leaks(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    with HomeAssistantSimulator(SimulatedHouse(seed=1, days=1), token=SECRET, event_rate=5) as sim:
        async def main() -> None:
            client = HomeAssistantClient(sim.url, SECRET, command_timeout=0.3)
            texts.append(repr(client))
            async with client:
                texts.append(repr(client))
                end = datetime.now(UTC)
                await client.statistics_during_period(["sensor.gas_meter"], end - timedelta(hours=2), end)
                sim.set_reply_delay(0.6)
                try:
                    await client.get_config()
                except HomeAssistantError as exc:
                    texts.extend([str(exc), repr(exc)])
                sim.set_reply_delay(0)
            for token in (WRONG, SECRET):
                sim.reject_tokens(token == SECRET)
                try:
                    await HomeAssistantClient(sim.url, token).connect()
                except HomeAssistantError as exc:
                    texts.extend([str(exc), repr(exc), str(exc.__cause__), str(exc.__context__)])
            sim.reject_tokens(False)
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            try:
                await HomeAssistantClient(f"http://127.0.0.1:{port}", SECRET).connect()
            except HomeAssistantError as exc:
                texts.extend([str(exc), repr(exc)])
            stream = StateChangeStream(sim.url, SECRET, lambda: {"sensor.gas_meter"}, heartbeat_interval=0.1)
            texts.append(repr(stream))
            async for _ in stream:
                stream.stop()

        asyncio.run(main())
        with HomeAssistantSyncClient(sim.url, SECRET) as sync:
            texts.append(repr(sync))
            texts.append(repr(vars(sync).get("_client")))

    assert "access_token" in caplog.text, "the frame logger was active, so the filter was really tested"
    for text in [*texts, caplog.text, *(str(r.args) for r in caplog.records)]:
        assert SECRET not in text
        assert WRONG not in text
        assert "very-secret" not in text and "wrong-but-still-secret" not in text
