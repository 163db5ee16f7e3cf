"""The async and sync clients against the simulator over real sockets: every command, every fault."""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from energy_pipeline.homeassistant.client import (
    HomeAssistantClient,
    HomeAssistantSyncClient,
    parse_energy_prefs,
    plan_statistics_chunks,
)
from energy_pipeline.homeassistant.models import (
    ROLE_UNCLASSIFIED,
    CommandError,
    CommandTimeoutError,
    HAEvent,
    HomeAssistantAuthError,
    HomeAssistantConnectionError,
    StateChangedEvent,
)
from energy_pipeline.simulator.house import SimulatedHouse
from energy_pipeline.simulator.server import HomeAssistantSimulator
from energy_pipeline_tests.homeassistant.conftest import TOKEN

T = TypeVar("T")
METERS = ["sensor.grid_import_energy", "sensor.grid_export_energy", "sensor.solar_production_energy",
          "sensor.battery_charge_energy", "sensor.battery_discharge_energy", "sensor.gas_meter",
          "sensor.heat_pump_energy", "sensor.dishwasher_energy"]


def run(factory: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
    async def main() -> T:
        async with asyncio.timeout(timeout):
            return await factory()

    return asyncio.run(main())


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_every_command_returns_typed_results(simulator: HomeAssistantSimulator) -> None:
    async def main() -> None:
        async with HomeAssistantClient(simulator.http_url, TOKEN) as ha:
            assert ha.ha_version == "2025.4.4"
            assert 0 <= await ha.ping() < 1
            config = await ha.get_config()
            assert (config.time_zone, config.version, config.currency) == ("Europe/Berlin", "2025.4.4", "EUR")
            prefs = await ha.get_energy_prefs()
            assert prefs is not None and prefs.roles() == {
                "sensor.grid_import_energy": "grid_import", "sensor.grid_export_energy": "grid_export",
                "sensor.solar_production_energy": "solar", "sensor.battery_charge_energy": "battery_in",
                "sensor.battery_discharge_energy": "battery_out", "sensor.gas_meter": "gas",
                "sensor.heat_pump_energy": "device", "sensor.dishwasher_energy": "device"}
            listed = await ha.list_statistic_ids()
            assert [m.statistic_id for m in listed] == METERS
            assert all(m.has_sum and not m.has_mean for m in listed)
            everything = await ha.list_statistic_ids(None)
            assert "sensor.outdoor_temperature" in {m.statistic_id for m in everything}
            meta = await ha.get_statistics_metadata(["sensor.gas_meter", "sensor.nope"])
            assert [(m.statistic_id, m.unit, m.unit_class, m.source) for m in meta] == [
                ("sensor.gas_meter", "m³", "volume", "recorder")]

            end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            stats = await ha.statistics_during_period(["sensor.gas_meter", "sensor.nope"], end - timedelta(hours=6),
                                                      end)
            assert stats["sensor.nope"] == [], "ids without rows get an empty list"
            rows = stats["sensor.gas_meter"]
            assert len(rows) == 6 and rows[0].start == end - timedelta(hours=6)
            assert all(r.start.tzinfo is UTC and r.end - r.start == timedelta(hours=1) for r in rows)
            assert all(r.change is not None and r.change >= 0 and r.sum is not None for r in rows)
            litres = await ha.statistics_during_period(["sensor.gas_meter"], end - timedelta(hours=6), end,
                                                       types=["change"], units={"volume": "L"})
            assert litres["sensor.gas_meter"][0].change == pytest.approx(rows[0].change * 1000)
            assert litres["sensor.gas_meter"][0].sum is None

            now = datetime.now(UTC)
            history = await ha.history_during_period(["sensor.grid_import_energy", "sensor.nope"],
                                                     now - timedelta(minutes=10), now)
            states = history["sensor.grid_import_energy"]
            assert history["sensor.nope"] == []
            assert len(states) > 10
            assert states[0].last_updated == now.replace(microsecond=now.microsecond // 1000 * 1000) - timedelta(
                minutes=10), "the start-time state"
            assert all(s.value is not None or s.state in ("unavailable", "unknown") for s in states)
            request = simulator.requests("history/history_during_period")[-1]
            assert request["minimal_response"] is False and request["no_attributes"] is True

    run(main)


def test_history_reads_the_compressed_format(simulator: HomeAssistantSimulator) -> None:
    """``lc`` when it differs from ``lu``; non-numeric states give ``value`` None."""
    from energy_pipeline.homeassistant import client as client_module

    entries = {"s": "unknown", "a": {}, "lu": 1796400038.9696562, "lc": 1796400000.5}
    parsed = client_module._seconds_to_datetime(entries["lu"])
    assert parsed == datetime(2026, 12, 4, 16, 0, 38, 969656, tzinfo=UTC)
    assert client_module.parse_statistic_row({"start": 1796227200000, "end": 1796230800000, "sum": 36.1,
                                              "state": 1036.1, "last_reset": None, "change": 0.1}).start == \
        datetime(2026, 12, 2, 16, tzinfo=UTC)


def test_huge_ranges_are_chunked_contiguous_and_unique(simulator: HomeAssistantSimulator) -> None:
    ids = ["sensor.grid_import_energy", "sensor.solar_production_energy", "sensor.gas_meter"]

    async def main() -> tuple[dict[str, Any], dict[str, Any], int]:
        end = datetime.now(UTC)
        start = end - timedelta(days=20)
        async with HomeAssistantClient(simulator.url, TOKEN) as whole:
            reference = await whole.statistics_during_period(ids, start, end)
        simulator.clear_requests()
        async with HomeAssistantClient(simulator.url, TOKEN, max_rows_per_request=300) as small:
            chunked = await small.statistics_during_period(ids, start, end)
        return reference, chunked, len(simulator.requests("recorder/statistics_during_period"))

    reference, chunked, requests = run(main)
    assert requests >= 4, "20 days x 3 ids at <= 300 rows per reply needs several requests"
    for sid in ids:
        rows = chunked[sid]
        assert len(rows) > 400
        assert all(b.start == a.end for a, b in itertools.pairwise(rows)), "contiguous"
        assert len({r.start for r in rows}) == len(rows), "unique"
        assert rows == reference[sid], "chunks concatenate to exactly one big reply"


@pytest.mark.parametrize("period", ["day", "week", "month"])
def test_calendar_periods_are_chunked_on_local_boundaries(simulator: HomeAssistantSimulator, period: str) -> None:
    ids = ["sensor.grid_import_energy", "sensor.heat_pump_energy"]

    async def main() -> tuple[dict[str, Any], dict[str, Any]]:
        end = datetime.now(UTC)
        start = simulator.house.start
        async with HomeAssistantClient(simulator.url, TOKEN) as whole:
            reference = await whole.statistics_during_period(ids, start, end, period)
        async with HomeAssistantClient(simulator.url, TOKEN, max_rows_per_request=4) as small:
            return reference, await small.statistics_during_period(ids, start, end, period)

    reference, chunked = run(main)
    for sid in ids:
        assert len(reference[sid]) >= 2
        assert chunked[sid] == reference[sid]
        assert all(b.start == a.end for a, b in zip(chunked[sid], chunked[sid][1:], strict=False))


def test_chunk_plan_is_consecutive_and_aligned() -> None:
    from zoneinfo import ZoneInfo

    start = datetime(2026, 10, 1, 7, 30, tzinfo=UTC)
    end = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
    tz = ZoneInfo("Europe/Berlin")
    hours = plan_statistics_chunks(start, end, "hour", 10, 1000, tz)
    assert hours[0][0] == start and hours[-1][1] == end and len(hours) == 8
    assert all(a[1] == b[0] for a, b in itertools.pairwise(hours))
    assert all(b[0].minute == 0 for b in hours[1:])
    days = plan_statistics_chunks(start, end, "day", 2, 10, tz)
    for (_, inner_end), (next_start, _) in itertools.pairwise(days):
        assert next_start - inner_end == timedelta(milliseconds=1)
        assert next_start.astimezone(tz).hour == 0
    assert plan_statistics_chunks(start, end, "hour", 1, 50_000, tz) == [(start, end)]


def test_energy_prefs_not_configured_logs_and_discovery_falls_back(caplog: pytest.LogCaptureFixture) -> None:
    house = SimulatedHouse(seed=5, days=2, energy_configured=False, water=True)
    with HomeAssistantSimulator(house, token=TOKEN) as sim:
        async def main() -> Any:
            async with HomeAssistantClient(sim.url, TOKEN) as ha:
                assert await ha.get_energy_prefs() is None
                return await ha.discover_entities()

        with caplog.at_level(logging.INFO, logger="energy_pipeline.homeassistant.client"):
            found = run(main)
    assert "energy dashboard not configured" in caplog.text
    assert {e.statistic_id for e in found} == {*METERS, "sensor.water_meter"}, "temperature is no meter"
    assert {e.role for e in found} == {ROLE_UNCLASSIFIED}
    assert {e.unit_class for e in found} == {"energy", "volume"}


def test_discovery_uses_the_dashboard_roles_and_both_grid_formats() -> None:
    house = SimulatedHouse(seed=5, days=2, grid_format="single", water=True)
    with HomeAssistantSimulator(house, token=TOKEN) as sim:
        async def main() -> Any:
            async with HomeAssistantClient(sim.url, TOKEN) as ha:
                return await ha.discover_entities()

        found = {e.statistic_id: e for e in run(main)}
    assert found["sensor.grid_import_energy"].role == "grid_import"
    assert found["sensor.grid_export_energy"].role == "grid_export"
    assert found["sensor.battery_charge_energy"].role == "battery_in"
    assert found["sensor.battery_discharge_energy"].role == "battery_out"
    assert (found["sensor.water_meter"].role, found["sensor.water_meter"].unit) == ("water", "L")
    assert found["sensor.heat_pump_energy"].name == "Heat pump"
    assert all(e.has_sum for e in found.values())


def test_parse_energy_prefs_from_the_fixture_shape() -> None:
    prefs = parse_energy_prefs({
        "energy_sources": [
            {"type": "grid", "flow_from": [{"stat_energy_from": "sensor.a"}, {"stat_energy_from": "sensor.a2"}],
             "flow_to": [{"stat_energy_to": "sensor.b"}], "cost_adjustment_day": 0.0},
            {"type": "solar", "stat_energy_from": "sensor.c", "config_entry_solar_forecast": None},
            {"type": "battery", "stat_energy_from": "sensor.out", "stat_energy_to": "sensor.in"},
            {"type": "gas", "stat_energy_from": "sensor.g"}, {"type": "water", "stat_energy_from": "sensor.w"},
            {"type": "future_thing", "stat_energy_from": "sensor.x"}],
        "device_consumption": [{"stat_consumption": "sensor.d1", "name": "Dish"}, {"stat_consumption": "sensor.d2"}]})
    assert prefs.roles() == {"sensor.a": "grid_import", "sensor.a2": "grid_import", "sensor.b": "grid_export",
                             "sensor.c": "solar", "sensor.in": "battery_in", "sensor.out": "battery_out",
                             "sensor.g": "gas", "sensor.w": "water", "sensor.d1": "device", "sensor.d2": "device"}
    assert [s.name for s in prefs.sources if s.role == "device"] == ["Dish", None]


def test_error_replies_raise_command_error(simulator: HomeAssistantSimulator) -> None:
    simulator.fail_command("recorder/get_statistics_metadata", "home_assistant_error", "Database is locked")

    async def main() -> None:
        async with HomeAssistantClient(simulator.url, TOKEN) as ha:
            with pytest.raises(CommandError) as caught:
                await ha.get_statistics_metadata(["sensor.gas_meter"])
            error = caught.value
            assert (error.code, error.message, error.command) == (
                "home_assistant_error", "Database is locked", "recorder/get_statistics_metadata")
            with pytest.raises(CommandError) as caught:
                await ha.command("no_such/command")
            assert caught.value.code == "unknown_command"
            with pytest.raises(CommandError) as caught:
                await ha.command("recorder/statistics_during_period", start_time="yesterday",
                                 statistic_ids=["sensor.gas_meter"], period="hour")
            assert (caught.value.code, caught.value.message) == ("invalid_start_time", "Invalid start_time")
            assert len(await ha.get_statistics_metadata(["sensor.gas_meter"])) == 1, "the connection survives"

    run(main)


def test_reply_slower_than_the_command_timeout(simulator: HomeAssistantSimulator) -> None:
    async def main() -> None:
        async with HomeAssistantClient(simulator.url, TOKEN, command_timeout=0.3) as ha:
            simulator.set_reply_delay(0.8)
            started = time.monotonic()
            with pytest.raises(CommandTimeoutError) as caught:
                await ha.get_config()
            assert time.monotonic() - started < 0.8, "the timeout fired before the (0.8 s late) reply"
            assert "get_config" in str(caught.value) and simulator.url in str(caught.value)
            assert isinstance(caught.value, HomeAssistantConnectionError)
            simulator.set_reply_delay(0)
            await asyncio.sleep(0.6)  # the late reply arrives and is ignored
            assert (await ha.get_config()).time_zone == "Europe/Berlin"

    run(main)


def test_a_closing_connection_fails_pending_commands(simulator: HomeAssistantSimulator) -> None:
    async def main() -> None:
        async with HomeAssistantClient(simulator.url, TOKEN) as ha:
            simulator.stop_answering_pings(True)
            pending = asyncio.create_task(ha.ping())
            subscription = await ha.subscribe_state_changed(["sensor.grid_import_energy"])
            await asyncio.sleep(0.1)
            simulator.drop_connections()
            with pytest.raises(HomeAssistantConnectionError) as caught:
                await pending
            assert simulator.url in str(caught.value)
            with pytest.raises(HomeAssistantConnectionError):
                async for _ in subscription:
                    pass
            with pytest.raises(HomeAssistantConnectionError):
                await ha.get_config()
            assert not ha.connected

    run(main)


def test_bad_token_is_an_auth_error_with_a_hint(simulator: HomeAssistantSimulator) -> None:
    async def main() -> None:
        with pytest.raises(HomeAssistantAuthError) as caught:
            async with HomeAssistantClient(simulator.url, "not-the-token"):
                pass
        assert str(caught.value) == (f"token rejected by Home Assistant at {simulator.url}; "
                                     "create a long-lived access token in your HA profile")

    run(main)


def test_unreachable_refused_and_timeout_name_url_and_cause() -> None:
    port = closed_port()

    async def refused() -> None:
        with pytest.raises(HomeAssistantConnectionError) as caught:
            await HomeAssistantClient(f"http://127.0.0.1:{port}", TOKEN, connect_timeout=2).connect()
        assert f"ws://127.0.0.1:{port}/api/websocket" in str(caught.value)
        assert "connection refused" in str(caught.value)

    run(refused)

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts TCP but never speaks WebSocket: the handshake times out
    try:
        async def timeout() -> None:
            with pytest.raises(HomeAssistantConnectionError) as caught:
                await HomeAssistantClient(f"http://127.0.0.1:{silent.getsockname()[1]}", TOKEN,
                                          connect_timeout=0.3).connect()
            assert "timed out after 0.3 s" in str(caught.value)

        run(timeout)
    finally:
        silent.close()

    async def tls() -> None:
        plain = HomeAssistantSimulator(SimulatedHouse(seed=1, days=1), token=TOKEN).start()
        try:
            with pytest.raises(HomeAssistantConnectionError) as caught:
                await HomeAssistantClient(f"https://127.0.0.1:{plain.port}", TOKEN, connect_timeout=2).connect()
            assert "TLS" in str(caught.value)
        finally:
            plain.stop()

    run(tls)


def _self_signed_context() -> Any:
    """A TLS server context with a throw-away self-signed certificate."""
    import ssl
    import tempfile

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1)).sign(key, hashes.SHA256()))
    with tempfile.TemporaryDirectory() as folder:
        cert_path, key_path = f"{folder}/cert.pem", f"{folder}/key.pem"
        with open(cert_path, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_path, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, key_path)
    return context


def test_untrusted_certificate_is_a_clear_tls_error() -> None:
    async def main() -> None:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=_self_signed_context())
        port = server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(HomeAssistantConnectionError) as caught:
                await HomeAssistantClient(f"https://127.0.0.1:{port}", TOKEN, connect_timeout=3).connect()
            assert "TLS certificate verification failed" in str(caught.value)
            assert f"wss://127.0.0.1:{port}/api/websocket" in str(caught.value)
        finally:
            server.close()

    run(main)


def test_subscriptions_filter_on_our_side_and_route_by_id(simulator: HomeAssistantSimulator) -> None:
    async def main() -> None:
        async with HomeAssistantClient(simulator.url, TOKEN) as ha:
            gas = await ha.subscribe_state_changed(["sensor.gas_meter"])
            everything = await ha.subscribe_state_changed()
            raw = await ha.subscribe_events("state_changed")
            seen: list[StateChangedEvent] = []
            async for event in gas:
                seen.append(event)
                if len(seen) == 3:
                    break
            assert {e.entity_id for e in seen} == {"sensor.gas_meter"}
            assert all(e.new_state is not None and e.new_state.entity_id == "sensor.gas_meter" for e in seen)
            assert all(e.new_state.value is not None or e.new_state.state in ("unavailable", "unknown")
                       for e in seen if e.new_state)
            other = await anext(everything)
            assert isinstance(other, StateChangedEvent)
            generic = await anext(raw)
            assert isinstance(generic, HAEvent) and generic.event_type == "state_changed"
            assert generic.data["new_state"]["entity_id"]
            gas.entity_ids = frozenset({"sensor.heat_pump_energy"})
            assert (await anext(gas)).entity_id == "sensor.heat_pump_energy"
            await gas.unsubscribe()
            await everything.unsubscribe()
            await raw.unsubscribe()
            assert len(simulator.requests("unsubscribe_events")) == 3

    run(main)


def test_sync_client_methods_and_retries(simulator: HomeAssistantSimulator) -> None:
    with HomeAssistantSyncClient(simulator.http_url, TOKEN) as ha:
        assert ha.ha_version == "2025.4.4"
        assert ha.get_config().time_zone == "Europe/Berlin"
        assert ha.ping() >= 0
        end = datetime.now(UTC)
        rows = ha.statistics_during_period(["sensor.gas_meter"], end - timedelta(hours=3), end)
        assert len(rows["sensor.gas_meter"]) >= 2
        assert ha.history_during_period(["sensor.gas_meter"], end - timedelta(minutes=2), end)["sensor.gas_meter"]
        assert {e.statistic_id for e in ha.discover_entities()} == set(METERS)
        assert [m.statistic_id for m in ha.get_statistics_metadata(["sensor.gas_meter"])] == ["sensor.gas_meter"]
        assert ha.list_statistic_ids()
        assert ha.get_energy_prefs() is not None
    assert threading.active_count() < 50

    port = closed_port()
    house = SimulatedHouse(seed=1, days=1)
    late = HomeAssistantSimulator(house, token=TOKEN, port=port)
    timer = threading.Timer(0.4, late.start)
    timer.start()
    try:
        started = time.monotonic()
        with HomeAssistantSyncClient(f"http://127.0.0.1:{port}", TOKEN, connect_attempts=6, backoff_initial=0.2,
                                     backoff_max=0.5) as ha:
            assert ha.get_config().version == "2025.4.4"
        assert time.monotonic() - started >= 0.3, "it retried until the server came up"
    finally:
        timer.join()
        late.stop()


def test_sync_client_never_retries_a_bad_token(simulator: HomeAssistantSimulator) -> None:
    with pytest.raises(HomeAssistantAuthError), HomeAssistantSyncClient(simulator.url, "wrong", connect_attempts=5):
        pass
    assert simulator.auth_failures == 1


def test_sync_client_gives_up_after_the_attempts() -> None:
    port = closed_port()
    started = time.monotonic()
    with pytest.raises(HomeAssistantConnectionError) as caught, HomeAssistantSyncClient(
            f"http://127.0.0.1:{port}", TOKEN, connect_attempts=3, backoff_initial=0.05, backoff_max=0.1):
        pass
    assert "connection refused" in str(caught.value)
    assert time.monotonic() - started < 3


def test_a_client_can_connect_again_after_close(simulator: HomeAssistantSimulator) -> None:
    async def main() -> None:
        ha = HomeAssistantClient(simulator.url, TOKEN)
        await ha.connect()
        await ha.close()
        assert not ha.connected
        await ha.connect()
        assert (await ha.get_config()).version == "2025.4.4"
        await ha.close()

    run(main)
