"""A WebSocket server that answers like Home Assistant 2025.4.4 (shapes of ``shared/ha-fixtures``).

It serves a :class:`~energy_pipeline.simulator.house.SimulatedHouse`: auth, ping/pong, get_config,
energy prefs, recorder metadata and statistics, history, and live ``state_changed`` events that
agree with the statistics. Faults can be injected from tests (thread-safe): dropped connections,
unanswered pings, slow replies, rejected tokens, failing commands, and a restart that stops
listening for a while and comes back on the same port while the house keeps producing readings.

Run it in a background thread (``start()``/``stop()`` or ``with``) or, from the CLI, inside
``asyncio.run`` (``serve_forever()``).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import itertools
import json
import logging
import math
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from energy_pipeline.homeassistant.client import RedactAccessToken
from energy_pipeline.simulator.house import (
    HA_VERSION,
    UNIT_FACTORS,
    US,
    Reading,
    SimulatedHouse,
    from_us,
)

log = logging.getLogger(__name__)
WIRE_LOG = logging.getLogger("energy_pipeline.simulator.wire")
WIRE_LOG.addFilter(RedactAccessToken())  # frame logs at DEBUG would show the auth message

ENTITY_ID_RE = re.compile(r"^(?!.+__)(?!_)[\da-z_]+(?<!_)\.(?!_)[\da-z_]+(?<!_)$")
PERIODS = ("5minute", "hour", "day", "week", "month")
STAT_TYPES = ("change", "last_reset", "max", "mean", "min", "state", "sum")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_NO_REPLY = object()


def _dumps(message: Any) -> str:
    """Compact JSON with raw UTF-8, like HA's orjson."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def result_message(message_id: Any, result: Any = None) -> dict[str, Any]:
    return {"id": message_id, "type": "result", "success": True, "result": result}


def error_message(message_id: Any, code: str, message: str) -> dict[str, Any]:
    return {"id": message_id, "type": "result", "success": False, "error": {"code": code, "message": message}}


def parse_ha_datetime(value: Any, tz: Any) -> datetime | None:
    """HA's ``dt_util.parse_datetime`` + ``ensure_utc``: ISO 8601 (``Z`` allowed); naive means HA's zone."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(UTC)


# --- a small voluptuous look-alike: HA's invalid_format messages ---------------------------------

class _Invalid(Exception):
    pass


def _where(path: list[Any]) -> str:
    rendered = "".join(f"[{p!r}]" for p in path)
    prefix = " for dictionary value" if path and isinstance(path[-1], str) else ""
    return f"{prefix} @ data{rendered}"


def _fail(what: str, path: list[Any], value: Any) -> _Invalid:
    return _Invalid(f"{what}{_where(path)}. Got {value!r}")


def _is_str(value: Any, path: list[Any]) -> None:
    if not isinstance(value, str):
        raise _fail("expected str", path, value)


def _is_bool(value: Any, path: list[Any]) -> None:
    if not isinstance(value, bool):
        raise _fail("expected bool", path, value)


def _is_int(value: Any, path: list[Any]) -> None:
    if type(value) is not int:
        raise _fail("expected int", path, value)


def _is_dict(value: Any, path: list[Any]) -> None:
    if not isinstance(value, dict):
        raise _fail("expected dict", path, value)


def _is_list(value: Any, path: list[Any]) -> None:
    if not isinstance(value, list):
        raise _fail("expected list", path, value)


def _one_of(*allowed: Any) -> Callable[[Any, list[Any]], None]:
    def check(value: Any, path: list[Any]) -> None:
        if value not in allowed:
            raise _fail("not a valid value", path, value)
    return check


def _list_of(item: Callable[[Any, list[Any]], None], min_length: int = 0) -> Callable[[Any, list[Any]], None]:
    def check(value: Any, path: list[Any]) -> None:
        _is_list(value, path)
        if len(value) < min_length:
            raise _fail(f"length of value must be at least {min_length}", path, value)
        for index, element in enumerate(value):
            item(element, [*path, index])
    return check


def _units(value: Any, path: list[Any]) -> None:
    _is_dict(value, path)
    for unit_class, unit in value.items():
        allowed = UNIT_FACTORS.get(unit_class) or ({"°C": 1, "°F": 1, "K": 1} if unit_class == "temperature" else None)
        if allowed is None:
            raise _Invalid(f"extra keys not allowed @ data{''.join(f'[{p!r}]' for p in [*path, unit_class])}. "
                           f"Got {unit!r}")
        if unit not in allowed:
            raise _fail(f"value must be one of {sorted(allowed)}", [*path, unit_class], unit)


def _calendar(value: Any, path: list[Any]) -> None:
    _is_dict(value, path)
    if "period" not in value:
        raise _Invalid(f"required key not provided @ data{''.join(f'[{p!r}]' for p in [*path, 'period'])}. Got None")
    _one_of("hour", "day", "week", "month", "year")(value["period"], [*path, "period"])
    if "offset" in value:
        _is_int(value["offset"], [*path, "offset"])


Field = tuple[bool, Callable[[Any, list[Any]], None]]
SCHEMAS: dict[str, dict[str, Field] | None] = {
    "ping": None,
    "get_config": {},
    "get_states": {},
    "energy/get_prefs": {},
    "energy/validate": {},
    "energy/save_prefs": {"energy_sources": (False, _is_list), "device_consumption": (False, _is_list),
                          "device_consumption_water": (False, _is_list)},
    "recorder/list_statistic_ids": {"statistic_type": (False, _one_of("sum", "mean"))},
    "recorder/get_statistics_metadata": {"statistic_ids": (False, _list_of(_is_str))},
    "recorder/statistics_during_period": {
        "start_time": (True, _is_str), "end_time": (False, _is_str),
        "statistic_ids": (True, _list_of(_is_str, 1)), "period": (True, _one_of(*PERIODS)),
        "units": (False, _units), "types": (False, _list_of(_one_of(*STAT_TYPES)))},
    "recorder/statistic_during_period": {
        "statistic_id": (True, _is_str), "types": (False, _list_of(_one_of("max", "mean", "min", "change"))),
        "units": (False, _units), "calendar": (False, _calendar), "fixed_period": (False, _is_dict),
        "rolling_window": (False, _is_dict)},
    "history/history_during_period": {
        "start_time": (True, _is_str), "end_time": (False, _is_str), "entity_ids": (True, _list_of(_is_str)),
        "include_start_time_state": (False, _is_bool), "significant_changes_only": (False, _is_bool),
        "minimal_response": (False, _is_bool), "no_attributes": (False, _is_bool)},
    "subscribe_events": {"event_type": (False, _is_str)},
    "supported_features": {"features": (True, _is_dict)},
    "unsubscribe_events": {"subscription": (True, _is_int)},
}


def validate(message: dict[str, Any]) -> None:
    """Raise :class:`_Invalid` with HA's message when ``message`` breaks its command schema."""
    schema = SCHEMAS[message["type"]]
    if schema is None:
        if len(message) > 2:
            raise _Invalid(f"extra keys not allowed. Got {message!r}")
        return
    errors = []
    for key, value in message.items():
        if key not in schema and key not in ("id", "type"):
            errors.append(f"extra keys not allowed @ data[{key!r}]. Got {value!r}")
    for key, (required, check) in schema.items():
        if key not in message:
            if required:
                errors.append(f"required key not provided @ data[{key!r}]. Got None")
            continue
        try:
            check(message[key], [key])
        except _Invalid as exc:
            errors.append(str(exc))
    if errors:
        raise _Invalid("\n".join(sorted(errors)))


class _CommandFailed(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class _Connection:
    """One client: its id bookkeeping, subscriptions and an ordered outgoing queue."""

    def __init__(self, ws: ServerConnection, number: int, max_pending: int):
        self.ws = ws
        self.number = number
        self.last_id = 0
        self.subscriptions: dict[int, str] = {}
        self.max_pending = max_pending
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.writer: asyncio.Task[None] | None = None
        self.closing = False

    def send(self, text: str) -> None:
        if self.closing:
            return
        if self.queue.qsize() >= self.max_pending:
            log.warning("simulator: client %d cannot keep up with %d pending messages; closing", self.number,
                        self.max_pending)
            self.closing = True
            self.ws.transport.abort()
            return
        self.queue.put_nowait(text)

    def send_json(self, message: Any) -> None:
        self.send(_dumps(message))

    async def write_loop(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while (text := await self.queue.get()) is not None:
                await self.ws.send(text)


class HomeAssistantSimulator:
    """Simulated Home Assistant on a real socket. ``url`` is the WebSocket URL once started."""

    def __init__(self, house: SimulatedHouse | None = None, token: str = "simulator-token", host: str = "127.0.0.1",
                 port: int = 0, *, event_rate: float | None = None, total_event_rate: float | None = None,
                 as_fast_as_possible: bool = False, auth_timeout: float = 10.0,
                 max_message_size: int | None = 64 * 1024 * 1024, max_pending_messages: int = 65_536,
                 compression: str | None = "deflate"):
        self.house = house or SimulatedHouse()
        self.__token = token
        self.host = host
        self.port = port
        self.auth_timeout = auth_timeout
        self.max_message_size = max_message_size
        self.max_pending_messages = max_pending_messages
        self.compression = compression
        self.as_fast_as_possible = as_fast_as_possible
        entity_count = len(self.house.entities)
        if as_fast_as_possible:
            self._tick_interval: float | None = 0.001
        elif total_event_rate:
            self._tick_interval = entity_count / total_event_rate
        elif event_rate:
            self._tick_interval = 1.0 / event_rate
        else:
            self._tick_interval = None

        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: Server | None = None
        self._producer: asyncio.Task[None] | None = None
        self._stopped: asyncio.Event | None = None
        self._connections: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._numbers = itertools.count(1)
        self._contexts = itertools.count(1)
        self._lock = threading.Lock()
        self._failures: dict[str, list[tuple[str, str]]] = {}
        self._answer_pings = True
        self._reply_delay = 0.0
        self._reject_tokens = False
        self._listening = threading.Event()
        self._received: collections.deque[tuple[int, dict[str, Any]]] = collections.deque(maxlen=100_000)
        self._live_start_us: int | None = None
        self._last_state: dict[int, dict[str, Any] | None] = {}
        self.events_sent = 0
        self.events_produced = 0
        self.connections_total = 0
        self.auth_failures = 0

    def __repr__(self) -> str:
        return f"HomeAssistantSimulator(url={self.url!r})"

    # -- addresses --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/api/websocket"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    # -- lifecycle (thread) ------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> HomeAssistantSimulator:
        """Run in a background thread; returns once the socket is listening."""
        if self._thread is not None:
            return self
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.start_async())
            except BaseException as exc:
                ready.set_exception(exc)
                loop.close()
                return
            ready.set_result(None)
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="ha-simulator", daemon=True)
        self._thread.start()
        ready.result(timeout)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if not loop.is_closed():
            future = asyncio.run_coroutine_threadsafe(self.stop_async(), loop)
            with contextlib.suppress(Exception):
                future.result(timeout)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._thread = None
        self._loop = None

    def __enter__(self) -> HomeAssistantSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- lifecycle (async) -------------------------------------------------------------------------

    async def start_async(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        if self._tick_interval is not None:
            self.house.set_tick_interval(self._tick_interval, precision=self._live_precision(self._tick_interval))
        self._live_start_us = self.house.now_us()
        for i, entity in enumerate(self.house.entities):
            current = self.house.state_at(entity.entity_id)
            self._last_state[i] = None if current is None else self._state_object(i, current[0],
                                                                                  int(current[1].timestamp() * US))
        await self._listen()
        self._producer = asyncio.create_task(self._produce(), name="ha-simulator-producer")

    async def stop_async(self) -> None:
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        if self._producer is not None:
            self._producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._producer
            self._producer = None
        await self._close_server()
        if self._stopped is not None:
            self._stopped.set()

    async def serve_forever(self) -> None:
        """Start and run until :meth:`stop_async` (the CLI's main coroutine)."""
        await self.start_async()
        assert self._stopped is not None
        await self._stopped.wait()

    async def _listen(self) -> None:
        self._server = await serve(self._handle, self.host, self.port, process_request=self._process_request,
                                   ping_interval=None, max_size=self.max_message_size,
                                   compression=self.compression, logger=WIRE_LOG)
        socket_name = self._server.sockets[0].getsockname()
        self.port = socket_name[1]
        self._listening.set()
        log.info("Home Assistant simulator listening on %s", self.url)

    async def _close_server(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close(close_connections=True)
            await server.wait_closed()
        self._listening.clear()

    def _live_precision(self, interval: float) -> int:
        """Enough decimals that a 10 W load still moves the meter at every tick."""
        per_tick = 0.01 * interval / 3600.0
        return int(min(9, max(self.house._seg_prec[-1], math.ceil(-math.log10(per_tick)) + 1)))

    # -- fault injection (thread-safe) ----------------------------------------------------------------

    def _submit(self, coro: Awaitable[Any]) -> concurrent.futures.Future[Any]:
        loop = self._loop
        if loop is None:
            raise RuntimeError("the simulator is not running")
        return asyncio.run_coroutine_threadsafe(coro, loop)  # type: ignore[arg-type]

    def drop_connections(self, wait: bool = True) -> None:
        """Cut every client connection without a close frame (a network failure)."""
        future = self._submit(self._drop_all())
        if wait and not self._in_loop():
            future.result(10)

    def _in_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    async def _drop_all(self) -> None:
        for connection in list(self._connections):
            connection.closing = True
            connection.ws.transport.abort()

    def stop_answering_pings(self, stop: bool = True) -> None:
        """While set, pings get no pong (the connection looks alive at TCP level but is dead)."""
        self._answer_pings = not stop

    def set_reply_delay(self, seconds: float) -> None:
        """Every reply (pong included) waits this long: an overloaded HA."""
        self._reply_delay = max(0.0, float(seconds))

    def reject_tokens(self, reject: bool = True) -> None:
        """While set, every token gets ``auth_invalid`` (a revoked token)."""
        self._reject_tokens = reject

    def fail_command(self, command_type: str, code: str, message: str, times: int = 1) -> None:
        """The next ``times`` commands of this type answer ``success: false`` with this error."""
        with self._lock:
            self._failures.setdefault(command_type, []).extend([(code, message)] * times)

    def restart(self, gap_seconds: float, wait: bool = False) -> concurrent.futures.Future[None]:
        """Stop listening and drop clients, keep simulating, listen again on the same port after the gap."""
        future = self._submit(self._restart(gap_seconds))
        if wait:
            future.result(gap_seconds + 10)
        return future

    async def _restart(self, gap_seconds: float) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)  # type: ignore[arg-type]
        try:
            await self._close_server()
            await asyncio.sleep(gap_seconds)
            await self._listen()
        finally:
            if task is not None:
                self._tasks.discard(task)  # type: ignore[arg-type]

    def wait_listening(self, timeout: float = 10.0) -> bool:
        return self._listening.wait(timeout)

    # -- introspection ---------------------------------------------------------------------------------

    def requests(self, command_type: str | None = None) -> list[dict[str, Any]]:
        """Commands received after auth (optionally of one type), oldest first."""
        with self._lock:
            return [dict(m) for _, m in self._received if command_type is None or m.get("type") == command_type]

    def clear_requests(self) -> None:
        with self._lock:
            self._received.clear()

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    def emitted_readings(self, entity_ids: Iterable[str] | None = None, since: datetime | None = None,
                         until: datetime | None = None) -> list[Reading]:
        """Every state change the house produced since the simulator started (also while it was down)."""
        start = since or (from_us(self._live_start_us) if self._live_start_us is not None else None)
        return self.house.readings(entity_ids, start, until)

    # -- connections ---------------------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path.split("?")[0].rstrip("/") != "/api/websocket":
            return connection.respond(HTTPStatus.NOT_FOUND, "404: Not Found\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        connection = _Connection(ws, next(self._numbers), self.max_pending_messages)
        self.connections_total += 1
        try:
            await ws.send(_dumps({"type": "auth_required", "ha_version": HA_VERSION}))
            if not await self._authenticate(ws):
                return
            self._connections.add(connection)
            connection.writer = asyncio.create_task(connection.write_loop())
            async for raw in ws:
                if isinstance(raw, bytes):
                    break
                try:
                    message = json.loads(raw)
                except ValueError:
                    log.info("simulator: client %d sent a non-JSON frame; closing like HA", connection.number)
                    break
                for item in message if isinstance(message, list) else [message]:
                    self._dispatch(connection, item)
            await ws.close(1000)
        except ConnectionClosed:
            pass
        finally:
            connection.closing = True
            self._connections.discard(connection)
            if connection.writer is not None:
                connection.queue.put_nowait(None)
                connection.writer.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await connection.writer

    async def _authenticate(self, ws: ServerConnection) -> bool:
        try:
            async with asyncio.timeout(self.auth_timeout):
                raw = await ws.recv()
        except TimeoutError:
            await ws.close(1000)
            return False
        try:
            message = json.loads(raw)
        except ValueError:
            await ws.close(1000)
            return False
        problem = None
        if not isinstance(message, dict):
            problem = f"expected a dictionary. Got {message!r}"
        elif message.get("type") != "auth":
            problem = f"not a valid value for dictionary value @ data['type']. Got {message.get('type')!r}"
        else:
            extra = [k for k in message if k not in ("type", "access_token", "api_password")]
            if extra:
                problem = f"extra keys not allowed @ data[{extra[0]!r}]. Got {message[extra[0]]!r}"
        if problem is not None:
            await ws.send(_dumps({"type": "auth_invalid", "message": f"Auth message incorrectly formatted: {problem}"}))
            await ws.close(1000)
            return False
        if self._reject_tokens or message.get("access_token") != self.__token:
            self.auth_failures += 1
            await ws.send(_dumps({"type": "auth_invalid", "message": "Invalid access token or password"}))
            await ws.close(1000)
            return False
        await ws.send(_dumps({"type": "auth_ok", "ha_version": HA_VERSION}))
        return True

    def _dispatch(self, connection: _Connection, message: Any) -> None:
        """HA's ``ActiveConnection.async_handle``: id checks, unknown commands, then the handler."""
        if (type(message) is not dict or not (message_id := message.get("id")) or type(message_id) is not int
                or message_id < 0 or not (command := message.get("type")) or type(command) is not str):
            echoed = message.get("id") if isinstance(message, dict) else 0
            connection.send_json(error_message(echoed, "invalid_format", "Message incorrectly formatted."))
            return
        if message_id <= connection.last_id:
            connection.send_json(error_message(message_id, "id_reuse", "Identifier values have to increase."))
            return
        if command not in SCHEMAS:
            connection.send_json(error_message(message_id, "unknown_command", "Unknown command."))
            return
        connection.last_id = message_id
        with self._lock:
            self._received.append((connection.number, message))
        task = asyncio.create_task(self._run(connection, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, connection: _Connection, message: dict[str, Any]) -> None:
        message_id, command = message["id"], message["type"]
        if self._reply_delay:
            await asyncio.sleep(self._reply_delay)
        with self._lock:
            queued = self._failures.get(command)
            injected = queued.pop(0) if queued else None
        if injected is not None:
            connection.send_json(error_message(message_id, *injected))
            return
        try:
            validate(message)
            reply = await getattr(self, "_cmd_" + command.replace("/", "_"))(connection, message)
        except _Invalid as exc:
            connection.send_json(error_message(message_id, "invalid_format", str(exc)))
            return
        except _CommandFailed as exc:
            connection.send_json(error_message(message_id, exc.code, exc.message))
            return
        except Exception:
            log.exception("simulator: %s failed", command)
            connection.send_json(error_message(message_id, "unknown_error", "Unknown error"))
            return
        if reply is _NO_REPLY:
            return
        connection.send(reply if isinstance(reply, str) else _dumps(result_message(message_id, reply)))

    # -- commands --------------------------------------------------------------------------------------

    async def _cmd_ping(self, connection: _Connection, message: dict[str, Any]) -> Any:
        if not self._answer_pings:
            return _NO_REPLY
        connection.send_json({"id": message["id"], "type": "pong"})
        return _NO_REPLY

    async def _cmd_get_config(self, connection: _Connection, message: dict[str, Any]) -> Any:
        return {
            "allowlist_external_dirs": ["/media", "/config/www"], "allowlist_external_urls": [],
            "components": ["api", "auth", "energy", "frontend", "history", "homeassistant", "http", "recorder",
                           "sensor", "template", "template.sensor", "websocket_api"],
            "config_dir": "/config", "config_source": "storage", "country": "DE", "currency": "EUR",
            "debug": False, "elevation": 34, "external_url": None, "internal_url": self.http_url, "language": "en",
            "latitude": 52.52, "location_name": "Simulated house", "longitude": 13.405, "radius": 100,
            "recovery_mode": False, "safe_mode": False, "state": "RUNNING", "time_zone": self.house.tz_name,
            "unit_system": {"length": "km", "accumulated_precipitation": "mm", "area": "m²", "mass": "g",
                            "pressure": "Pa", "temperature": "°C", "volume": "L", "wind_speed": "m/s"},
            "version": HA_VERSION, "whitelist_external_dirs": ["/media", "/config/www"]}

    async def _cmd_get_states(self, connection: _Connection, message: dict[str, Any]) -> Any:
        states = []
        for i, entity in enumerate(self.house.entities):
            current = self.house.state_at(entity.entity_id)
            if current is not None:
                states.append(self._state_object(i, current[0], int(current[1].timestamp() * US)))
        return states

    async def _cmd_energy_get_prefs(self, connection: _Connection, message: dict[str, Any]) -> Any:
        prefs = self.house.energy_prefs()
        if prefs is None:
            raise _CommandFailed("not_found", "No prefs")
        return prefs

    async def _cmd_energy_save_prefs(self, connection: _Connection, message: dict[str, Any]) -> Any:
        return self.house.save_energy_prefs({k: v for k, v in message.items() if k not in ("id", "type")})

    async def _cmd_energy_validate(self, connection: _Connection, message: dict[str, Any]) -> Any:
        prefs = self.house.energy_prefs() or {"energy_sources": [], "device_consumption": []}
        return {"energy_sources": [[] for _ in prefs.get("energy_sources", [])],
                "device_consumption": [[] for _ in prefs.get("device_consumption", [])]}

    async def _cmd_recorder_list_statistic_ids(self, connection: _Connection, message: dict[str, Any]) -> Any:
        return self.house.metadata(statistic_type=message.get("statistic_type"))

    async def _cmd_recorder_get_statistics_metadata(self, connection: _Connection, message: dict[str, Any]) -> Any:
        return self.house.metadata(message.get("statistic_ids") or None)

    def _window(self, message: dict[str, Any]) -> tuple[datetime, datetime | None]:
        """``start_time``/``end_time`` as HA parses them, with HA's error codes for bad ones."""
        start = parse_ha_datetime(message["start_time"], self.house.tz)
        if start is None:
            raise _CommandFailed("invalid_start_time", "Invalid start_time")
        end = None
        if message.get("end_time"):
            end = parse_ha_datetime(message["end_time"], self.house.tz)
            if end is None:
                raise _CommandFailed("invalid_end_time", "Invalid end_time")
        return start, end

    async def _cmd_recorder_statistics_during_period(self, connection: _Connection, message: dict[str, Any]) -> Any:
        start, end = self._window(message)
        message_id = message["id"]

        def compute() -> str:
            result = self.house.statistics_during_period(message["statistic_ids"], start, end, message["period"],
                                                         message.get("types"), message.get("units"))
            return _dumps(result_message(message_id, result))

        return await asyncio.to_thread(compute)

    async def _cmd_recorder_statistic_during_period(self, connection: _Connection, message: dict[str, Any]) -> Any:
        start, end = self._resolve_period(message)
        return await asyncio.to_thread(self.house.statistic_during_period, message["statistic_id"], start, end,
                                       message.get("types"), message.get("units"))

    def _resolve_period(self, message: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
        """HA's ``resolve_period`` for calendar, fixed_period and rolling_window."""
        now = self.house.now()
        if "calendar" in message:
            calendar = message["calendar"]
            unit, offset = calendar["period"], calendar.get("offset", 0)
            local = now.astimezone(self.house.tz)
            if unit == "hour":
                start = local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=offset)
                return start.astimezone(UTC), (start + timedelta(hours=1)).astimezone(UTC)
            midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
            if unit == "day":
                start = midnight + timedelta(days=offset)
                end = start + timedelta(days=1)
            elif unit == "week":
                start = midnight - timedelta(days=midnight.weekday()) + timedelta(weeks=offset)
                end = start + timedelta(weeks=1)
            elif unit == "month":
                month_index = midnight.year * 12 + midnight.month - 1 + offset
                start = midnight.replace(year=month_index // 12, month=month_index % 12 + 1, day=1)
                nxt = month_index + 1
                end = start.replace(year=nxt // 12, month=nxt % 12 + 1)
            else:
                start = midnight.replace(year=midnight.year + offset, month=1, day=1)
                end = start.replace(year=start.year + 1)
            return (start.replace(tzinfo=None).replace(tzinfo=self.house.tz).astimezone(UTC),
                    end.replace(tzinfo=None).replace(tzinfo=self.house.tz).astimezone(UTC))
        if "fixed_period" in message:
            fixed = message["fixed_period"]
            return (parse_ha_datetime(fixed.get("start_time"), self.house.tz),
                    parse_ha_datetime(fixed.get("end_time"), self.house.tz))
        if "rolling_window" in message:
            window = message["rolling_window"]
            duration = timedelta(**{k: v for k, v in (window.get("duration") or {}).items()
                                    if k in ("days", "hours", "minutes", "seconds")})
            offset = timedelta(**{k: v for k, v in (window.get("offset") or {}).items()
                                  if k in ("days", "hours", "minutes", "seconds")})
            end = now + offset
            return end - duration, end
        return None, None

    async def _cmd_history_history_during_period(self, connection: _Connection, message: dict[str, Any]) -> Any:
        start, end = self._window(message)
        if any(not ENTITY_ID_RE.match(e) for e in message["entity_ids"]):
            raise _CommandFailed("invalid_entity_ids", "Invalid entity_ids")
        message_id = message["id"]

        def compute() -> str:
            result = self.house.history(message["entity_ids"], start, end,
                                        include_start_time_state=message.get("include_start_time_state", True),
                                        minimal_response=message.get("minimal_response", False),
                                        no_attributes=message.get("no_attributes", False))
            return _dumps(result_message(message_id, result))

        return await asyncio.to_thread(compute)

    async def _cmd_subscribe_events(self, connection: _Connection, message: dict[str, Any]) -> Any:
        connection.subscriptions[message["id"]] = message.get("event_type") or "*"
        return None

    async def _cmd_supported_features(self, connection: _Connection, message: dict[str, Any]) -> Any:
        return None  # accepted; replies are never coalesced into lists here

    async def _cmd_unsubscribe_events(self, connection: _Connection, message: dict[str, Any]) -> Any:
        if connection.subscriptions.pop(message["subscription"], None) is None:
            raise _CommandFailed("not_found", "Subscription not found.")
        return None

    # -- live events ---------------------------------------------------------------------------------

    def _context(self, t_us: int) -> dict[str, Any]:
        number = next(self._contexts)
        millis = t_us // 1000
        chars = []
        for _ in range(10):
            chars.append(_CROCKFORD[millis % 32])
            millis //= 32
        tail = []
        for _ in range(16):
            tail.append(_CROCKFORD[number % 32])
            number //= 32
        return {"id": "".join(reversed(chars)) + "".join(reversed(tail)), "parent_id": None, "user_id": None}

    def _state_object(self, index: int, state: str, t_us: int, context: dict[str, Any] | None = None
                      ) -> dict[str, Any]:
        entity = self.house.entities[index]
        when = from_us(t_us).isoformat()
        return {"entity_id": entity.entity_id, "state": state, "attributes": entity.attributes(),
                "last_changed": when, "last_reported": when, "last_updated": when,
                "context": context or self._context(t_us)}

    def _broadcast(self, event: dict[str, Any]) -> None:
        event_type = event["event_type"]
        body: str | None = None
        for connection in list(self._connections):
            for subscription_id, wanted in connection.subscriptions.items():
                if wanted == event_type or wanted == "*":
                    if body is None:
                        body = '{"type":"event","event":' + _dumps(event) + ',"id":'
                    connection.send(body + str(subscription_id) + "}")
                    if event_type == "state_changed":
                        self.events_sent += 1

    async def _produce(self) -> None:
        """Turn the house's state changes into events as time passes (also while nobody listens)."""
        house = self.house
        cursor = self._live_start_us or house.now_us()
        last_hour = (house.now_us() - house.compile_delay_us) // (3600 * US)
        last_five = (house.now_us() - house.compile_delay_us) // (300 * US)
        while True:
            now = house.now_us()
            end = min(now, cursor + 50_000) if self.as_fast_as_possible else now
            if end > cursor:
                for t_us, index, state, _previous in house.changes_between(cursor, end):
                    self.events_produced += 1
                    context = self._context(t_us)
                    new_state = self._state_object(index, state, t_us, context)
                    old_state = self._last_state.get(index)
                    self._last_state[index] = new_state
                    if self._connections:
                        self._broadcast({"event_type": "state_changed",
                                         "data": {"entity_id": new_state["entity_id"], "old_state": old_state,
                                                  "new_state": new_state},
                                         "origin": "LOCAL", "time_fired": new_state["last_updated"],
                                         "context": context})
                cursor = end
            compiled = now - house.compile_delay_us
            if compiled // (300 * US) > last_five:
                last_five = compiled // (300 * US)
                self._broadcast(self._plain_event("recorder_5min_statistics_generated", now))
            if compiled // (3600 * US) > last_hour:
                last_hour = compiled // (3600 * US)
                self._broadcast(self._plain_event("recorder_hourly_statistics_generated", now))
            if self.as_fast_as_possible:
                await asyncio.sleep(0 if cursor < house.now_us() else 0.001)
                continue
            wake = min(house.next_tick_after(cursor), (last_five + 1) * 300 * US + house.compile_delay_us)
            await asyncio.sleep(min(0.5, max(0.0, (wake - house.now_us()) / US)))

    def _plain_event(self, event_type: str, t_us: int) -> dict[str, Any]:
        return {"event_type": event_type, "data": {}, "origin": "LOCAL", "time_fired": from_us(t_us).isoformat(),
                "context": self._context(t_us)}


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until true or ``timeout`` (a helper for tests and scripts)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
