"""A ``state_changed`` stream that survives Home Assistant restarts, network drops and dead sockets.

A quiet house sends no events for hours, so silence proves nothing: the stream sends an HA
``ping`` every ``heartbeat_interval`` and declares the connection dead when no ``pong`` comes back
within ``heartbeat_timeout``. It then reconnects with capped exponential backoff and jitter,
re-authenticates, re-subscribes, and yields a :class:`StreamGap` covering the time in which events
may have been lost, so the caller can fill it from ``history/history_during_period``.

Auth errors are fatal (status ``failed``): retrying a revoked token only fills HA's log with
failed logins. Connection errors are retried forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from energy_pipeline.homeassistant.client import (
    HomeAssistantClient,
    StateChangedSubscription,
    backoff_delay,
    normalize_url,
)
from energy_pipeline.homeassistant.models import (
    CommandTimeoutError,
    HomeAssistantAuthError,
    HomeAssistantConnectionError,
    HomeAssistantError,
    StateChangedEvent,
    StreamGap,
)

log = logging.getLogger(__name__)

STATUSES = ("connecting", "streaming", "reconnecting", "stopped", "failed")
StatusCallback = Callable[..., Any]


def _now() -> datetime:
    return datetime.now(UTC)


class StateChangeStream:
    """Async iterator of :class:`StateChangedEvent` and :class:`StreamGap` for the provider's entities.

    ``on_status(status, **info)`` is called with ``status`` in :data:`STATUSES` and ``info`` keys
    ``last_heartbeat``, ``last_event``, ``last_error``, ``connected_since``, ``events_total``,
    ``reconnects`` (plus ``retry_in`` when reconnecting, ``entity_count`` when streaming), so the
    caller can persist the stream state. It may be a plain function or a coroutine function.
    """

    def __init__(self, url: str, token: str, entity_ids_provider: Callable[[], set[str]], *,
                 heartbeat_interval: float = 30.0, heartbeat_timeout: float = 10.0, backoff_initial: float = 1.0,
                 backoff_max: float = 60.0, entity_refresh_interval: float = 30.0, connect_timeout: float = 10.0,
                 command_timeout: float = 30.0, gap_margin: float = 2.0, resume_from: datetime | None = None,
                 on_status: StatusCallback | None = None, rng: random.Random | None = None,
                 client_options: dict[str, Any] | None = None):
        self._url = normalize_url(url)
        self.__token = token
        self._provider = entity_ids_provider
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.entity_refresh_interval = entity_refresh_interval
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.gap_margin = timedelta(seconds=gap_margin)
        self._resume_from = resume_from
        self._on_status = on_status
        self._rng = rng or random.Random()
        self._client_options = client_options or {}

        self.status = "stopped"
        self.events_total = 0
        self.reconnects = 0
        self.last_event: datetime | None = None
        self.last_heartbeat: datetime | None = None
        self.last_error: str | None = None
        self.connected_since: datetime | None = None
        self._last_alive: datetime | None = None
        self._entity_ids: set[str] = set()
        self._heartbeat_error: str | None = None

        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._client: HomeAssistantClient | None = None
        self._lock = threading.Lock()
        self._background: set[asyncio.Future[None]] = set()

    def __repr__(self) -> str:
        return f"StateChangeStream(url={self._url!r}, status={self.status!r})"

    @property
    def entity_ids(self) -> frozenset[str]:
        return frozenset(self._entity_ids)

    # -- control ----------------------------------------------------------------------------------

    def stop(self) -> None:
        """End the stream cleanly; safe from any thread and before or during iteration."""
        with self._lock:
            self._stopping = True
            loop, event = self._loop, self._stop_event
        if loop is None or event is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake_stop(event)
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._wake_stop, event)

    def _wake_stop(self, event: asyncio.Event) -> None:
        event.set()
        client = self._client
        if client is not None:
            task = asyncio.ensure_future(client.close())
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def run(self, handler: Callable[[StateChangedEvent | StreamGap], Awaitable[None] | None]) -> None:
        """Feed every event and gap to ``handler`` until :meth:`stop` (or an auth error, which raises)."""
        async for item in self:
            result = handler(item)
            if inspect.isawaitable(result):
                await result

    # -- status -----------------------------------------------------------------------------------

    async def _emit(self, status: str, **extra: Any) -> None:
        self.status = status
        info = {"last_heartbeat": self.last_heartbeat, "last_event": self.last_event,
                "last_error": self.last_error, "connected_since": self.connected_since,
                "events_total": self.events_total, "reconnects": self.reconnects, **extra}
        if self._on_status is None:
            return
        try:
            result = self._on_status(status, **info)
            if inspect.isawaitable(result):
                await result
        except Exception:  # a failing persistence callback must not kill the stream
            log.exception("stream status callback failed for status %s", status)

    # -- main loop --------------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[StateChangedEvent | StreamGap]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[StateChangedEvent | StreamGap]:
        with self._lock:
            self._loop = asyncio.get_running_loop()
            self._stop_event = asyncio.Event()
            if self._stopping:
                self._stop_event.set()
        gap_start = self._resume_from
        attempt = 0
        try:
            while not self._stopping:
                await self._emit("connecting", attempt=attempt + 1)
                client = HomeAssistantClient(self._url, self.__token, connect_timeout=self.connect_timeout,
                                             command_timeout=self.command_timeout, **self._client_options)
                try:
                    subscription = await self._open(client)
                    if subscription is None:  # stopped while connecting
                        await client.close()
                        break
                except HomeAssistantAuthError as exc:
                    await client.close()
                    self.last_error = str(exc)
                    await self._emit("failed")
                    raise
                except HomeAssistantError as exc:
                    await client.close()
                    self._client = None
                    if self._stopping:
                        break
                    self.last_error = str(exc)
                    delay = backoff_delay(attempt, self.backoff_initial, self.backoff_max, self._rng)
                    attempt += 1
                    log.warning("Home Assistant stream: %s; reconnecting in %.1f s", exc, delay)
                    await self._emit("reconnecting", retry_in=delay)
                    await self._sleep(delay)
                    continue

                now = _now()
                self.connected_since = now
                self._last_alive = now
                attempt = 0
                if gap_start is not None:
                    yield StreamGap(start=min(gap_start - self.gap_margin, now), end=now + self.gap_margin)
                    gap_start = None
                await self._emit("streaming", entity_count=len(self._entity_ids))
                if self._stopping:
                    await client.close()
                    break

                session = self._session(client, subscription)
                try:
                    async for item in session:
                        yield item
                finally:
                    await session.aclose()
                await client.close()
                self._client = None
                if self._stopping:
                    break
                # Events after the last proof of life (an event or an answered ping) may be lost.
                gap_start = self._last_alive or self.connected_since or _now()
                self.reconnects += 1
                self.connected_since = None
                delay = backoff_delay(0, self.backoff_initial, self.backoff_max, self._rng)
                log.warning("Home Assistant stream lost (%s); reconnecting in %.1f s", self.last_error, delay)
                await self._emit("reconnecting", retry_in=delay)
                await self._sleep(delay)
                attempt = 1
        finally:
            client = self._client
            self._client = None
            if client is not None:
                await client.close()
            if self.status != "failed":
                self.connected_since = None
                await self._emit("stopped")

    async def _open(self, client: HomeAssistantClient) -> StateChangedSubscription | None:
        """Connect and subscribe, unless :meth:`stop` comes first (then ``None``)."""

        async def open_and_subscribe() -> StateChangedSubscription:
            await client.connect()
            self._client = client
            self._refresh_entity_ids(initial=True)
            return await client.subscribe_state_changed(self._entity_ids)

        opening = asyncio.ensure_future(open_and_subscribe())
        stopped = asyncio.ensure_future(self._stop_event.wait()) if self._stop_event else None
        waiting = {opening} if stopped is None else {opening, stopped}
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if stopped is not None:
                stopped.cancel()
        if not opening.done():
            opening.cancel()
            with contextlib.suppress(asyncio.CancelledError, HomeAssistantError):
                await opening
            return None
        return opening.result()

    async def _session(self, client: HomeAssistantClient,
                       subscription: StateChangedSubscription) -> AsyncIterator[StateChangedEvent]:
        """Events of one connection until it dies; heartbeat and entity refresh run beside it."""
        self._heartbeat_error = None
        heartbeat = asyncio.create_task(self._heartbeat(client), name="ha-stream-heartbeat")
        refresher = asyncio.create_task(self._refresh_loop(subscription), name="ha-stream-entities")
        try:
            while True:
                try:
                    event = await anext(subscription)
                except HomeAssistantConnectionError as exc:
                    if not self._stopping:
                        self.last_error = self._heartbeat_error or str(exc)
                    return
                except StopAsyncIteration:
                    return
                received = _now()
                self.events_total += 1
                self.last_event = received
                self._last_alive = received
                yield event
        finally:
            heartbeat.cancel()
            refresher.cancel()
            for task in (heartbeat, refresher):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _heartbeat(self, client: HomeAssistantClient) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            sent = _now()
            try:
                await client.ping(timeout=self.heartbeat_timeout)
            except CommandTimeoutError:
                self._heartbeat_error = f"no pong within {self.heartbeat_timeout:g} s; connection declared dead"
                if not self._stopping:
                    log.warning("Home Assistant stream at %s: %s", self._url, self._heartbeat_error)
                await client.close()
                return
            except HomeAssistantError:
                return  # the connection is already failing; the subscription reports why
            # Every event HA queued before answering this ping has arrived: alive up to ``sent``.
            self.last_heartbeat = _now()
            if self._last_alive is None or sent > self._last_alive:
                self._last_alive = sent
            await self._emit("streaming", entity_count=len(self._entity_ids))

    async def _refresh_loop(self, subscription: StateChangedSubscription) -> None:
        while True:
            await asyncio.sleep(self.entity_refresh_interval)
            if self._refresh_entity_ids():
                subscription.entity_ids = frozenset(self._entity_ids)

    def _refresh_entity_ids(self, initial: bool = False) -> bool:
        """Re-read the tracked set; keeps the old one when the provider fails. True when it changed."""
        try:
            fresh = set(self._provider())
        except Exception:
            log.exception("entity id provider failed; keeping %d tracked entities", len(self._entity_ids))
            return False
        if fresh == self._entity_ids:
            return False
        if not initial:
            log.info("tracked entities changed: %d -> %d", len(self._entity_ids), len(fresh))
        self._entity_ids = fresh
        return True

    async def _sleep(self, seconds: float) -> None:
        event = self._stop_event
        if event is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await event.wait()
