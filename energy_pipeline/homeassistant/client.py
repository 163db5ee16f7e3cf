"""Home Assistant WebSocket client: one connection, typed commands, subscriptions.

Shapes follow the recordings in ``shared/ha-fixtures`` (HA 2025.4.4). One reader task owns the
socket's receive side and routes every frame by ``id``: results and pongs resolve the pending
command, ``event`` frames go to the subscription with that id. When the socket closes, every
pending command and every subscription fails with :class:`HomeAssistantConnectionError`, so no
caller waits forever on a dead connection.

The access token is sent once, in the auth frame, and never appears in an exception, a log line
(the websockets frame logger is filtered) or a ``repr``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from energy_pipeline.homeassistant.models import (
    ROLE_UNCLASSIFIED,
    CommandError,
    CommandTimeoutError,
    DiscoveredEntity,
    EnergyPrefs,
    EnergySource,
    HAConfig,
    HAEvent,
    HAState,
    HAStatistic,
    HomeAssistantAuthError,
    HomeAssistantConnectionError,
    HomeAssistantError,
    InvalidHomeAssistantUrlError,
    StateChangedEvent,
    StatisticMetadata,
    parse_state_value,
)
from energy_pipeline.homeassistant.periods import (
    CALENDAR_PERIODS,
    NOMINAL_PERIOD_SECONDS,
    PERIODS,
    add_periods,
    bucket_start,
    ensure_utc,
)

log = logging.getLogger(__name__)

ACCEPTED_URL_FORMS = ("http://HOST:8123", "https://HOST", "ws://HOST:8123/api/websocket",
                      "wss://HOST/api/websocket")
DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024
#: Rows per statistics reply: ~110 bytes each, so a reply stays around 5 MB.
DEFAULT_MAX_ROWS_PER_REQUEST = 50_000
#: Entity-hours of raw history per request (a 1 s sensor gives ~140 kB per hour).
DEFAULT_HISTORY_ENTITY_HOURS = 120.0
UNCLASSIFIED_UNIT_CLASSES = frozenset({"energy", "volume"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}

T = TypeVar("T")


# --- secrets never reach the logs -----------------------------------------------------------------

class RedactAccessToken(logging.Filter):
    """Rewrites any record that carries an auth frame (websockets logs frames at DEBUG)."""

    _pattern = re.compile(r'("?access_token"?\s*[:=]\s*"?)[^"\s,}]*')

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is not ours to fix
            return True
        if "access_token" in message:
            record.msg = self._pattern.sub(r"\1***", message)
            record.args = None
        return True


#: Logger handed to websockets: frame-level debug output passes through the redacting filter.
WIRE_LOG = logging.getLogger("energy_pipeline.homeassistant.wire")
WIRE_LOG.addFilter(RedactAccessToken())


# --- URL ------------------------------------------------------------------------------------------

def normalize_url(url: str) -> str:
    """The WebSocket endpoint for an HA base or WebSocket URL (http->ws, https->wss, /api/websocket)."""
    forms = ", ".join(ACCEPTED_URL_FORMS)
    raw = url.strip() if isinstance(url, str) else ""
    try:
        parsed = urlsplit(raw)
        port_ok = parsed.port is None or 0 < parsed.port < 65536
    except ValueError:
        parsed, port_ok = None, False
    shown = _redact_userinfo(raw) if raw else repr(url)
    if (parsed is None or not port_ok or parsed.scheme.lower() not in _SCHEMES or not parsed.hostname
            or parsed.username is not None or parsed.password is not None or parsed.query or parsed.fragment
            or parsed.path.rstrip("/") not in ("", "/api/websocket")):
        raise InvalidHomeAssistantUrlError(
            f"invalid Home Assistant URL {shown}: use one of {forms} (HOST is a name or IP address)")
    return f"{_SCHEMES[parsed.scheme.lower()]}://{parsed.netloc}/api/websocket"


def _redact_userinfo(raw: str) -> str:
    return re.sub(r"//[^/@]*@", "//***@", raw)


# --- small helpers --------------------------------------------------------------------------------

def backoff_delay(attempt: int, initial: float, maximum: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: between half and all of ``min(maximum, initial * 2**attempt)``."""
    base = min(maximum, initial * (2 ** min(attempt, 32)))
    return base * (0.5 + 0.5 * (rng or random).random())


def _iso_ms(value: datetime) -> str:
    """The ISO form HA's frontend sends: UTC with milliseconds and a ``Z``."""
    return ensure_utc(value).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ms_to_datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        return _parse_time(value)
    return _EPOCH + timedelta(milliseconds=value)


def _seconds_to_datetime(value: float) -> datetime:
    return _EPOCH + timedelta(seconds=value)


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def parse_state_object(obj: Mapping[str, Any] | None) -> HAState | None:
    """A full state object (events, REST) as :class:`HAState`; ``None`` stays ``None``."""
    if not obj:
        return None
    state = str(obj.get("state"))
    updated = _parse_time(obj.get("last_updated")) or _parse_time(obj.get("last_changed")) or _EPOCH
    changed = _parse_time(obj.get("last_changed")) or updated
    return HAState(entity_id=str(obj.get("entity_id")), state=state, value=parse_state_value(state),
                   last_changed=changed, last_updated=updated)


def parse_statistic_row(row: Mapping[str, Any]) -> HAStatistic:
    """One ``statistics_during_period`` row (ms epochs) as :class:`HAStatistic` (aware UTC)."""
    return HAStatistic(start=_ms_to_datetime(row["start"]), end=_ms_to_datetime(row["end"]),  # type: ignore[arg-type]
                       change=_float(row.get("change")), sum=_float(row.get("sum")),
                       state=_float(row.get("state")), mean=_float(row.get("mean")),
                       min=_float(row.get("min")), max=_float(row.get("max")),
                       last_reset=_ms_to_datetime(row.get("last_reset")))


def parse_metadata(item: Mapping[str, Any]) -> StatisticMetadata:
    return StatisticMetadata(statistic_id=item["statistic_id"], has_sum=bool(item.get("has_sum")),
                             has_mean=bool(item.get("has_mean")), name=item.get("name"),
                             source=item.get("source"), unit=item.get("statistics_unit_of_measurement"),
                             display_unit=item.get("display_unit_of_measurement"),
                             unit_class=item.get("unit_class"))


def parse_energy_prefs(result: Mapping[str, Any]) -> EnergyPrefs:
    """Roles from ``energy/get_prefs``: both grid formats, solar, battery, gas, water, devices."""
    sources: list[EnergySource] = []

    def add(statistic_id: Any, role: str, name: Any = None) -> None:
        if isinstance(statistic_id, str) and statistic_id:
            sources.append(EnergySource(statistic_id=statistic_id, role=role,
                                        name=name if isinstance(name, str) else None))

    for source in result.get("energy_sources") or []:
        kind = source.get("type")
        if kind == "grid":
            for flow in source.get("flow_from") or []:
                add(flow.get("stat_energy_from"), "grid_import")
            for flow in source.get("flow_to") or []:
                add(flow.get("stat_energy_to"), "grid_export")
            add(source.get("stat_energy_from"), "grid_import")  # newer single-meter format
            add(source.get("stat_energy_to"), "grid_export")
        elif kind == "solar":
            add(source.get("stat_energy_from"), "solar")
        elif kind == "battery":
            add(source.get("stat_energy_to"), "battery_in")  # energy into the battery: charge
            add(source.get("stat_energy_from"), "battery_out")  # energy out of it: discharge
        elif kind in ("gas", "water"):
            add(source.get("stat_energy_from"), kind)
        else:
            log.info("energy source type %r is not known to this client; skipped", kind)
    for key in ("device_consumption", "device_consumption_water"):
        for device in result.get(key) or []:
            add(device.get("stat_consumption"), "device", device.get("name"))
    return EnergyPrefs(sources=tuple(sources))


def _describe_connect_error(exc: BaseException, timeout: float, tls: bool = False) -> str:
    if tls and isinstance(exc, ConnectionResetError | ConnectionAbortedError | ssl.SSLEOFError):
        return "connection reset during the TLS handshake (does this port really serve https/wss?)"
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is Home Assistant running and the port right?)"
    if isinstance(exc, socket.gaierror):
        return f"host name could not be resolved ({exc.strerror or exc})"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed ({exc.verify_message or exc})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error ({exc.reason or exc})"
    if isinstance(exc, InvalidStatus):
        return (f"HTTP {exc.response.status_code} instead of a WebSocket upgrade "
                "(is this Home Assistant's /api/websocket endpoint?)")
    if isinstance(exc, InvalidURI):
        return "invalid WebSocket URI"
    if isinstance(exc, InvalidHandshake):
        return f"WebSocket handshake failed ({exc})"
    if isinstance(exc, ConnectionClosed):
        return f"connection closed during authentication ({_describe_close(exc.rcvd.code if exc.rcvd else None)})"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by the server"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"


def _describe_close(code: int | None, reason: str = "") -> str:
    if code is None:
        return "connection lost without a close frame"
    return f"close code {code}" + (f" ({reason})" if reason else "")


class _Closed:
    """Marker put on subscription queues when the connection ends."""

    def __init__(self, error: str):
        self.error = error


_END = object()


class Subscription(Generic[T]):
    """Events of one ``subscribe_events``; iterate it, ``unsubscribe()`` (or ``async with``) when done.

    Iteration raises :class:`HomeAssistantConnectionError` when the connection ends, so a consumer
    always learns that events may have been missed.
    """

    def __init__(self, client: HomeAssistantClient, subscription_id: int, queue: asyncio.Queue[Any],
                 convert: Callable[[dict[str, Any]], T | None]):
        self._client = client
        self.id = subscription_id
        self._queue = queue
        self._convert = convert
        self._done = False

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        while True:
            item = await self._queue.get()
            if isinstance(item, _Closed):
                self._queue.put_nowait(item)  # every later call fails the same way
                raise HomeAssistantConnectionError(item.error)
            if item is _END:
                self._queue.put_nowait(item)
                raise StopAsyncIteration
            converted = self._convert(item)
            if converted is not None:
                return converted

    def pending(self) -> int:
        """Events received but not consumed yet (backlog)."""
        return self._queue.qsize()

    async def unsubscribe(self) -> None:
        if self._done:
            return
        self._done = True
        await self._client._unsubscribe(self.id)
        self._queue.put_nowait(_END)

    async def __aenter__(self) -> Subscription[T]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(HomeAssistantError):
            await self.unsubscribe()


class StateChangedSubscription(Subscription[StateChangedEvent]):
    """``state_changed`` events filtered on our side; assign ``entity_ids`` to change the filter live."""

    def __init__(self, client: HomeAssistantClient, subscription_id: int, queue: asyncio.Queue[Any],
                 entity_ids: Iterable[str] | None):
        super().__init__(client, subscription_id, queue, self._to_event)
        self.entity_ids: frozenset[str] | None = None if entity_ids is None else frozenset(entity_ids)

    def _to_event(self, event: dict[str, Any]) -> StateChangedEvent | None:
        if event.get("event_type") != "state_changed":
            return None
        data = event.get("data") or {}
        entity_id = data.get("entity_id")
        wanted = self.entity_ids
        if not isinstance(entity_id, str) or (wanted is not None and entity_id not in wanted):
            return None
        return StateChangedEvent(entity_id=entity_id, new_state=parse_state_object(data.get("new_state")),
                                 old_state=parse_state_object(data.get("old_state")),
                                 time_fired=_parse_time(event.get("time_fired")))


def _to_ha_event(event: dict[str, Any]) -> HAEvent:
    return HAEvent(event_type=str(event.get("event_type")), data=dict(event.get("data") or {}),
                   time_fired=_parse_time(event.get("time_fired")), origin=event.get("origin"))


# --- the client -----------------------------------------------------------------------------------

class HomeAssistantClient:
    """One authenticated WebSocket connection to Home Assistant (``async with`` connects and closes)."""

    def __init__(self, url: str, token: str, *, connect_timeout: float = 10.0, command_timeout: float = 30.0,
                 max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
                 max_rows_per_request: int = DEFAULT_MAX_ROWS_PER_REQUEST,
                 history_entity_hours_per_request: float = DEFAULT_HISTORY_ENTITY_HOURS,
                 ssl_context: ssl.SSLContext | None = None):
        self._url = normalize_url(url)
        if not isinstance(token, str) or not token.strip():
            raise HomeAssistantAuthError(
                f"no access token for Home Assistant at {self._url}; "
                "create a long-lived access token in your HA profile")
        self.__token = token.strip()
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.max_message_size = max_message_size
        self.max_rows_per_request = max(1, int(max_rows_per_request))
        self.history_entity_hours_per_request = history_entity_hours_per_request
        self._ssl = ssl_context
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._send_lock: asyncio.Lock | None = None
        self._next_id = 1
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._subscriptions: dict[int, asyncio.Queue[Any]] = {}
        self._ha_version: str | None = None
        self._closed_reason: str | None = None
        self._time_zone: str | None = None
        self.requests_sent = 0

    def __repr__(self) -> str:
        state = "connected" if self.connected else "not connected"
        return f"HomeAssistantClient(url={self._url!r}, {state})"

    @property
    def url(self) -> str:
        return self._url

    @property
    def ha_version(self) -> str | None:
        """HA's version from ``auth_ok`` (``None`` before connecting)."""
        return self._ha_version

    @property
    def connected(self) -> bool:
        return self._ws is not None and self._closed_reason is None

    # -- connection -------------------------------------------------------------------------------

    async def __aenter__(self) -> HomeAssistantClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the socket and authenticate; raises auth or connection errors, never leaks the token."""
        if self.connected:
            raise HomeAssistantError(f"already connected to Home Assistant at {self._url}")
        self._ws, self._reader, self._next_id = None, None, 1
        self._pending, self._subscriptions = {}, {}
        ws: ClientConnection | None = None
        try:
            async with asyncio.timeout(self.connect_timeout):
                tls: dict[str, Any] = {"ssl": self._ssl or True} if self._url.startswith("wss:") else {}
                ws = await connect(self._url, open_timeout=None, ping_interval=None, close_timeout=2,
                                   max_size=self.max_message_size, logger=WIRE_LOG, **tls)
                self._ha_version = await self._authenticate(ws)
        except HomeAssistantError:
            if ws is not None:
                await ws.close()
            raise
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI, ConnectionClosed, ValueError) as exc:
            if ws is not None:
                with contextlib.suppress(Exception):
                    await ws.close()
            cause = _describe_connect_error(exc, self.connect_timeout, self._url.startswith("wss:"))
            raise HomeAssistantConnectionError(
                f"cannot connect to Home Assistant at {self._url}: {cause}") from None
        self._ws = ws
        self._closed_reason = None
        self._send_lock = asyncio.Lock()
        self._reader = asyncio.create_task(self._read_loop(ws), name=f"ha-reader {self._url}")
        log.debug("connected to Home Assistant %s at %s", self._ha_version, self._url)

    async def _authenticate(self, ws: ClientConnection) -> str | None:
        first = json.loads(await ws.recv())
        if not isinstance(first, dict) or first.get("type") != "auth_required":
            raise HomeAssistantConnectionError(
                f"cannot connect to Home Assistant at {self._url}: expected auth_required, "
                f"got {str(first.get('type') if isinstance(first, dict) else type(first).__name__)!r}")
        await ws.send(json.dumps({"type": "auth", "access_token": self.__token}))
        reply = json.loads(await ws.recv())
        kind = reply.get("type") if isinstance(reply, dict) else None
        if kind == "auth_ok":
            return reply.get("ha_version") or first.get("ha_version")
        if kind == "auth_invalid":
            raise HomeAssistantAuthError(
                f"token rejected by Home Assistant at {self._url}; "
                "create a long-lived access token in your HA profile")
        raise HomeAssistantConnectionError(
            f"cannot connect to Home Assistant at {self._url}: unexpected answer to auth ({kind!r})")

    async def close(self) -> None:
        """Close the socket; pending commands and subscriptions fail with a connection error."""
        ws, reader = self._ws, self._reader
        if ws is None:
            return
        if self._closed_reason is None:
            self._fail_all("connection closed by the client")
        with contextlib.suppress(Exception):
            await ws.close()
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def wait_closed(self) -> str:
        """Wait until the connection ends; returns why."""
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._reader)
        return self._closed_reason or "closed"

    async def _read_loop(self, ws: ClientConnection) -> None:
        reason = "closed"
        try:
            async for raw in ws:
                if isinstance(raw, bytes):
                    continue
                try:
                    message = json.loads(raw)
                except ValueError:
                    log.warning("Home Assistant at %s sent a frame that is not JSON; ignored", self._url)
                    continue
                for item in message if isinstance(message, list) else (message,):
                    if isinstance(item, dict):
                        self._dispatch(item)
            reason = _describe_close(ws.close_code, ws.close_reason or "")
        except ConnectionClosed as exc:
            reason = _describe_close(exc.rcvd.code if exc.rcvd else None, exc.rcvd.reason if exc.rcvd else "")
        except asyncio.CancelledError:
            reason = "connection closed by the client"
            raise
        except Exception as exc:  # the connection is unusable; report it instead of dying silently
            reason = f"{type(exc).__name__}: {exc}"
        finally:
            if self._closed_reason is None:
                self._fail_all(f"connection to Home Assistant at {self._url} lost: {reason}")

    def _dispatch(self, message: dict[str, Any]) -> None:
        message_id = message.get("id")
        if message.get("type") == "event":
            queue = self._subscriptions.get(message_id)  # type: ignore[arg-type]
            if queue is not None:
                queue.put_nowait(message.get("event") or {})
            return
        future = self._pending.pop(message_id, None)  # type: ignore[arg-type]
        if future is not None and not future.done():
            future.set_result(message)

    def _fail_all(self, reason: str) -> None:
        self._closed_reason = reason
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(HomeAssistantConnectionError(reason))
        for queue in self._subscriptions.values():
            queue.put_nowait(_Closed(reason))
        self._subscriptions = {}

    # -- raw commands -----------------------------------------------------------------------------

    async def _request(self, message: dict[str, Any], timeout: float | None,
                       before_send: Callable[[int], None] | None = None) -> dict[str, Any]:
        ws, lock = self._ws, self._send_lock
        if ws is None or lock is None:
            raise HomeAssistantConnectionError(f"not connected to Home Assistant at {self._url}")
        if self._closed_reason is not None:
            raise HomeAssistantConnectionError(self._closed_reason)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        async with lock:  # ids must reach HA in increasing order
            message_id = self._next_id
            self._next_id += 1
            self._pending[message_id] = future
            if before_send is not None:
                before_send(message_id)
            try:
                await ws.send(json.dumps({"id": message_id, **message}))
            except ConnectionClosed:
                self._pending.pop(message_id, None)
                raise HomeAssistantConnectionError(
                    self._closed_reason or f"connection to Home Assistant at {self._url} lost") from None
            self.requests_sent += 1
        limit = self.command_timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(limit):
                return await future
        except TimeoutError:
            self._pending.pop(message_id, None)
            raise CommandTimeoutError(
                f"no reply to {message.get('type')} within {limit:g} s from Home Assistant at {self._url}"
            ) from None

    async def command(self, command_type: str, /, *, timeout: float | None = None, **fields: Any) -> Any:
        """Send one command and return its ``result``; ``success: false`` raises :class:`CommandError`."""
        reply = await self._request({"type": command_type, **fields}, timeout)
        if reply.get("type") == "pong":
            return None
        if not reply.get("success"):
            error = reply.get("error") or {}
            raise CommandError(str(error.get("code", "unknown_error")), str(error.get("message", "")),
                               command_type)
        return reply.get("result")

    async def ping(self, timeout: float | None = None) -> float:
        """Round trip of an HA ``ping`` in seconds (the heartbeat)."""
        started = time.perf_counter()
        reply = await self._request({"type": "ping"}, timeout)
        if reply.get("type") != "pong":
            error = reply.get("error") or {}
            raise CommandError(str(error.get("code", "unknown_error")), str(error.get("message", "")), "ping")
        return time.perf_counter() - started

    # -- typed commands ---------------------------------------------------------------------------

    async def get_config(self) -> HAConfig:
        result = await self.command("get_config")
        self._time_zone = result.get("time_zone")
        return HAConfig(time_zone=result.get("time_zone") or "UTC", version=result.get("version") or "",
                        location_name=result.get("location_name"), currency=result.get("currency"),
                        unit_system=dict(result.get("unit_system") or {}))

    async def time_zone(self) -> str:
        """HA's time zone (cached after the first ``get_config``)."""
        if self._time_zone is None:
            await self.get_config()
        return self._time_zone or "UTC"

    async def get_energy_prefs(self) -> EnergyPrefs | None:
        """The energy dashboard's sources, or ``None`` when it was never configured."""
        try:
            result = await self.command("energy/get_prefs")
        except CommandError as exc:
            if exc.code == "not_found":
                log.info("energy dashboard not configured in Home Assistant at %s", self._url)
                return None
            raise
        return parse_energy_prefs(result or {})

    async def list_statistic_ids(self, statistic_type: str | None = "sum") -> list[StatisticMetadata]:
        fields = {} if statistic_type is None else {"statistic_type": statistic_type}
        result = await self.command("recorder/list_statistic_ids", **fields)
        return [parse_metadata(item) for item in result or []]

    async def get_statistics_metadata(self, statistic_ids: Iterable[str]) -> list[StatisticMetadata]:
        ids = list(dict.fromkeys(statistic_ids))
        if not ids:
            return []
        result = await self.command("recorder/get_statistics_metadata", statistic_ids=ids)
        return [parse_metadata(item) for item in result or []]

    async def statistics_during_period(
        self, statistic_ids: Iterable[str], start: datetime, end: datetime, period: str = "hour",
        types: Iterable[str] | None = None, units: Mapping[str, str] | None = None,
    ) -> dict[str, list[HAStatistic]]:
        """Rows per id for ``start <= row.start < end``; every requested id is a key (maybe empty).

        Long ranges are cut into consecutive chunks at HA bucket boundaries so no reply exceeds
        ``max_rows_per_request`` rows; the replies are concatenated. Day/week/month buckets follow
        HA's time zone and HA's own window rules (the first bucket starts at its local midnight).
        """
        ids = list(dict.fromkeys(statistic_ids))
        start, end = ensure_utc(start, "start"), ensure_utc(end, "end")
        if period not in PERIODS:
            raise ValueError(f"unknown period {period!r}; use one of {', '.join(PERIODS)}")
        out: dict[str, list[HAStatistic]] = {sid: [] for sid in ids}
        if not ids or end <= start:
            return out
        tz = ZoneInfo(await self.time_zone()) if period in CALENDAR_PERIODS else ZoneInfo("UTC")
        fields: dict[str, Any] = {"statistic_ids": ids, "period": period}
        if types is not None:
            fields["types"] = list(types)
        if units:
            fields["units"] = dict(units)
        for chunk_start, chunk_end in plan_statistics_chunks(start, end, period, len(ids),
                                                             self.max_rows_per_request, tz):
            result = await self.command("recorder/statistics_during_period", start_time=_iso_ms(chunk_start),
                                        end_time=_iso_ms(chunk_end), **fields)
            for sid, rows in (result or {}).items():
                target = out.get(sid)
                if target is None:
                    continue
                for row in rows:
                    parsed = parse_statistic_row(row)
                    if target and parsed.start <= target[-1].start:
                        continue  # never twice the same bucket, whatever HA sends
                    target.append(parsed)
        return out

    async def history_during_period(self, entity_ids: Iterable[str], start: datetime, end: datetime, *,
                                    include_start_time_state: bool = True) -> dict[str, list[HAState]]:
        """Raw states (compressed format: s, lu, lc) per entity; long windows are fetched in chunks."""
        ids = list(dict.fromkeys(entity_ids))
        start, end = ensure_utc(start, "start"), ensure_utc(end, "end")
        out: dict[str, list[HAState]] = {eid: [] for eid in ids}
        if not ids or end <= start:
            return out
        window = timedelta(hours=max(5 / 60, self.history_entity_hours_per_request / len(ids)))
        chunk_start, first = start, True
        while chunk_start < end:
            chunk_end = min(end, chunk_start + window)
            result = await self.command(
                "history/history_during_period", start_time=_iso_ms(chunk_start), end_time=_iso_ms(chunk_end),
                entity_ids=ids, minimal_response=False, no_attributes=True,
                include_start_time_state=include_start_time_state and first)
            for eid, entries in (result or {}).items():
                target = out.get(eid)
                if target is None:
                    continue
                for entry in entries:
                    updated = _seconds_to_datetime(entry["lu"])
                    changed = _seconds_to_datetime(entry["lc"]) if "lc" in entry else updated
                    state = str(entry.get("s"))
                    target.append(HAState(entity_id=eid, state=state, value=parse_state_value(state),
                                          last_changed=changed, last_updated=updated))
            chunk_start, first = chunk_end, False
        return out

    async def subscribe_events(self, event_type: str | None = None) -> Subscription[HAEvent]:
        """Every event of ``event_type`` (all events when ``None``) as :class:`HAEvent`."""
        queue, sub_id = await self._subscribe(event_type)
        return Subscription(self, sub_id, queue, _to_ha_event)

    async def subscribe_state_changed(self, entity_ids: Iterable[str] | None = None) -> StateChangedSubscription:
        """``state_changed`` events of ``entity_ids`` (all when ``None``), states parsed to numbers."""
        queue, sub_id = await self._subscribe("state_changed")
        return StateChangedSubscription(self, sub_id, queue, entity_ids)

    async def _subscribe(self, event_type: str | None) -> tuple[asyncio.Queue[Any], int]:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        registered: list[int] = []

        def register(message_id: int) -> None:  # before the send: events may follow the result at once
            registered.append(message_id)
            self._subscriptions[message_id] = queue

        fields = {} if event_type is None else {"event_type": event_type}
        try:
            reply = await self._request({"type": "subscribe_events", **fields}, None, register)
        except BaseException:
            for message_id in registered:
                self._subscriptions.pop(message_id, None)
            raise
        if not reply.get("success"):
            self._subscriptions.pop(registered[0], None)
            error = reply.get("error") or {}
            raise CommandError(str(error.get("code", "unknown_error")), str(error.get("message", "")),
                               "subscribe_events")
        return queue, registered[0]

    async def _unsubscribe(self, subscription_id: int) -> None:
        self._subscriptions.pop(subscription_id, None)
        if self.connected:
            await self.command("unsubscribe_events", subscription=subscription_id)

    async def discover_entities(self) -> list[DiscoveredEntity]:
        """Energy statistics and their roles: from the energy dashboard, else every energy/volume meter.

        Never guesses from names: without a dashboard the role is ``unclassified`` and only the
        recorder's ``unit_class`` (energy, volume) decides what is a meter.
        """
        prefs = await self.get_energy_prefs()
        if prefs is not None and prefs.sources:
            roles = prefs.roles()
            names: dict[str, str] = {}
            for source in prefs.sources:
                if source.name and source.statistic_id not in names:
                    names[source.statistic_id] = source.name
            metadata = {m.statistic_id: m for m in await self.get_statistics_metadata(roles)}
            found = []
            for statistic_id, role in roles.items():
                meta = metadata.get(statistic_id)
                if meta is None:
                    log.warning("energy dashboard uses %s but the recorder has no statistics for it", statistic_id)
                found.append(DiscoveredEntity(
                    statistic_id=statistic_id, role=role, unit=meta.unit if meta else None,
                    has_sum=meta.has_sum if meta else False,
                    name=names.get(statistic_id) or (meta.name if meta else None),
                    source=meta.source if meta else None, unit_class=meta.unit_class if meta else None))
            return found
        return [DiscoveredEntity(statistic_id=m.statistic_id, role=ROLE_UNCLASSIFIED, unit=m.unit,
                                 has_sum=m.has_sum, name=m.name, source=m.source, unit_class=m.unit_class)
                for m in await self.list_statistic_ids("sum")
                if m.has_sum and m.unit_class in UNCLASSIFIED_UNIT_CLASSES]


def plan_statistics_chunks(start: datetime, end: datetime, period: str, id_count: int, max_rows: int,
                           tz: ZoneInfo) -> list[tuple[datetime, datetime]]:
    """Consecutive ``(start_time, end_time)`` pairs to send, each reply at most ~``max_rows`` rows.

    Inner boundaries sit on HA bucket starts. HA extends a day/week/month ``end_time`` to the end of
    its bucket, so an inner chunk ends 1 ms before the boundary: that bucket stays in the next chunk.
    """
    per_chunk = max(1, max_rows // max(1, id_count))
    span_buckets = (end - start).total_seconds() / NOMINAL_PERIOD_SECONDS[period]
    if span_buckets <= per_chunk:
        return [(start, end)]
    chunks: list[tuple[datetime, datetime]] = []
    chunk_start = start
    boundary = add_periods(bucket_start(start, period, tz), period, per_chunk, tz)
    calendar = period in CALENDAR_PERIODS
    while boundary < end:
        chunks.append((chunk_start, boundary - timedelta(milliseconds=1) if calendar else boundary))
        chunk_start = boundary
        boundary = add_periods(boundary, period, per_chunk, tz)
    chunks.append((chunk_start, end))
    return chunks


async def connect_with_retry(url: str, token: str, *, attempts: int = 4, backoff_initial: float = 0.5,
                             backoff_max: float = 8.0, **client_options: Any) -> HomeAssistantClient:
    """A connected client; connection errors are retried with backoff and jitter, auth errors are not."""
    attempt = 0
    while True:
        client = HomeAssistantClient(url, token, **client_options)
        try:
            await client.connect()
            return client
        except HomeAssistantAuthError:
            raise
        except HomeAssistantConnectionError as exc:
            attempt += 1
            if attempt >= attempts:
                raise
            delay = backoff_delay(attempt - 1, backoff_initial, backoff_max)
            log.warning("%s; retrying in %.1f s (attempt %d of %d)", exc, delay, attempt + 1, attempts)
            await asyncio.sleep(delay)


class HomeAssistantSyncClient:
    """Blocking facade for Dagster ops: a private event loop runs the async client in a thread.

    ``with HomeAssistantSyncClient(url, token) as ha: ha.statistics_during_period(...)``
    """

    def __init__(self, url: str, token: str, *, connect_attempts: int = 4, backoff_initial: float = 0.5,
                 backoff_max: float = 8.0, **client_options: Any):
        self._url = normalize_url(url)
        self.__token = token
        self._attempts = connect_attempts
        self._backoff = (backoff_initial, backoff_max)
        self._options = client_options
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: HomeAssistantClient | None = None

    def __repr__(self) -> str:
        return f"HomeAssistantSyncClient(url={self._url!r})"

    @property
    def url(self) -> str:
        return self._url

    @property
    def ha_version(self) -> str | None:
        return self._client.ha_version if self._client else None

    @property
    def client(self) -> HomeAssistantClient:
        if self._client is None:
            raise HomeAssistantConnectionError(f"not connected to Home Assistant at {self._url}")
        return self._client

    def __enter__(self) -> HomeAssistantSyncClient:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        if self._loop is not None:
            return
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="ha-sync-client", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            self._client = self._run(connect_with_retry(
                self._url, self.__token, attempts=self._attempts, backoff_initial=self._backoff[0],
                backoff_max=self._backoff[1], **self._options))
        except BaseException:
            self._stop_loop()
            raise

    def close(self) -> None:
        if self._loop is None:
            return
        try:
            if self._client is not None:
                self._run(self._client.close())
        finally:
            self._client = None
            self._stop_loop()

    def _stop_loop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=10)
        loop.close()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            coro.close()
            raise HomeAssistantConnectionError(f"not connected to Home Assistant at {self._url}")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _call(self, method: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        async def call() -> T:
            return await method(*args, **kwargs)

        return self._run(call())

    def get_config(self) -> HAConfig:
        return self._call(self.client.get_config)

    def get_energy_prefs(self) -> EnergyPrefs | None:
        return self._call(self.client.get_energy_prefs)

    def list_statistic_ids(self, statistic_type: str | None = "sum") -> list[StatisticMetadata]:
        return self._call(self.client.list_statistic_ids, statistic_type)

    def get_statistics_metadata(self, statistic_ids: Iterable[str]) -> list[StatisticMetadata]:
        return self._call(self.client.get_statistics_metadata, list(statistic_ids))

    def statistics_during_period(self, statistic_ids: Iterable[str], start: datetime, end: datetime,
                                 period: str = "hour", types: Iterable[str] | None = None,
                                 units: Mapping[str, str] | None = None) -> dict[str, list[HAStatistic]]:
        return self._call(self.client.statistics_during_period, list(statistic_ids), start, end, period,
                          None if types is None else list(types), units)

    def history_during_period(self, entity_ids: Iterable[str], start: datetime, end: datetime, *,
                              include_start_time_state: bool = True) -> dict[str, list[HAState]]:
        return self._call(self.client.history_during_period, list(entity_ids), start, end,
                          include_start_time_state=include_start_time_state)

    def ping(self) -> float:
        return self._call(self.client.ping)

    def discover_entities(self) -> list[DiscoveredEntity]:
        return self._call(self.client.discover_entities)

    def command(self, command_type: str, /, **fields: Any) -> Any:
        return self._call(self.client.command, command_type, **fields)
