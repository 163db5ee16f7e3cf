"""The streaming ingest: Home Assistant ``state_changed`` events into ``energy_readings``.

Kept free of Dagster so it can be driven by the Dagster job, by tests and by benchmarks alike. It
joins the resilient :class:`StateChangeStream` (heartbeat, reconnect) with the durable
:class:`ReadingBuffer` (batching, retry, spill), fills every gap the stream reports from HA's raw
history (same keys, so nothing is duplicated), and keeps ``stream_state`` in the document store
current for the UI and the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from energy_pipeline.homeassistant.client import HomeAssistantClient
from energy_pipeline.homeassistant.models import HomeAssistantError, StateChangedEvent, StreamGap
from energy_pipeline.homeassistant.stream import StateChangeStream
from energy_pipeline.storage.documents import DocumentStore
from energy_pipeline.storage.reading_buffer import ReadingBuffer
from energy_pipeline.storage.timeseries import Reading, TimeSeriesStore

log = logging.getLogger(__name__)

# HA keeps raw states for 10 days by default: older gaps cannot be filled from history.
HISTORY_RETENTION = timedelta(days=10)
STATE_WRITE_INTERVAL_S = 1.0
# After a termination request the stream gets this long to close its connections before the flush.
STOP_GRACE_S = 15.0
STATISTICS_GENERATED_EVENT = "recorder_hourly_statistics_generated"


@dataclass
class StreamSettings:
    heartbeat_interval: float = 30.0
    heartbeat_timeout: float = 10.0
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    entity_refresh_interval: float = 30.0
    max_batch: int = 500
    max_delay: float = 1.0
    max_memory: int = 50_000
    max_runtime_s: float | None = None  # None = until stopped (tests and benchmarks bound it)


class EventIngestor:
    """Runs until :meth:`stop` (or ``max_runtime_s``); flushes everything it received on the way out."""

    def __init__(self, url: str, token: str, timeseries: TimeSeriesStore, documents: DocumentStore,
                 spill_dir: Path, settings: StreamSettings | None = None,
                 log_info: Callable[[str], None] | None = None,
                 connection_provider: Callable[[], tuple[str, str]] | None = None):
        self.url = url
        self._token = token
        self.timeseries = timeseries
        self.documents = documents
        self.settings = settings or StreamSettings()
        self.buffer = ReadingBuffer(timeseries, spill_dir, max_batch=self.settings.max_batch,
                                    max_delay=self.settings.max_delay, max_memory=self.settings.max_memory)
        self._log = log_info or log.info
        self.connection_provider = connection_provider
        self._stop_requested = False
        self._settings_checked = time.monotonic()
        self.stream: StateChangeStream | None = None
        self.non_numeric_skipped = 0
        self.gap_filled = 0
        self._reported_written = 0
        self._reported_skipped = 0
        self._last_state_write = 0.0
        self._pending_state: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"EventIngestor(url={self.url!r})"

    def tracked_entity_ids(self) -> set[str]:
        return {e.entity_id for e in self.documents.list_entities(tracked=True)}

    def resume_point(self) -> datetime | None:
        """Where the previous run stopped: the oldest of the latest stored readings of tracked entities."""
        tracked = sorted(self.tracked_entity_ids())
        if not tracked:
            return None
        latest = self.timeseries.latest_reading_ts(tracked)
        if not latest:
            return None
        oldest = min(latest.values())
        return max(oldest, datetime.now(UTC) - HISTORY_RETENTION)

    def stop(self) -> None:
        """Ask the stream to end; safe from any thread, also before it has started."""
        self._stop_requested = True
        if self.stream is not None:
            self.stream.stop()

    # -- the loop ---------------------------------------------------------------------------------

    def run(self) -> None:
        """Blocking entry point; always flushes the buffer and records the final state.

        The event loop runs in its own thread so that an interrupt in this one (Dagster raises it here
        when a run is terminated from the UI) becomes an orderly stop, bounded in time, then a flush.
        """
        errors: list[BaseException] = []

        def loop() -> None:
            try:
                asyncio.run(self._run())
            except BaseException as exc:  # handed to the caller's thread
                errors.append(exc)

        thread = threading.Thread(target=loop, name="ha-event-stream", daemon=True)
        thread.start()
        try:
            while thread.is_alive():
                thread.join(0.5)
        except BaseException:
            self._log("run terminated: stopping the stream and flushing")
            self.stop()
            thread.join(STOP_GRACE_S)
            raise
        finally:
            self.close()
        if errors:
            raise errors[0]

    def close(self) -> None:
        written = self.buffer.close()
        if written:
            self._log(f"flushed {written} readings on shutdown")
        self._write_state(force=True)

    async def _run(self) -> None:
        resume_from = self.resume_point()
        if resume_from:
            self._log(f"resuming from the last stored reading at {resume_from.isoformat()}")
        s = self.settings
        if self._stop_requested:
            return
        self.stream = StateChangeStream(
            self.url, self._token, self.tracked_entity_ids, heartbeat_interval=s.heartbeat_interval,
            heartbeat_timeout=s.heartbeat_timeout, backoff_initial=s.backoff_initial, backoff_max=s.backoff_max,
            entity_refresh_interval=s.entity_refresh_interval, resume_from=resume_from, on_status=self._on_status,
        )
        if self._stop_requested:  # stop() came while the stream was being built
            self.stream.stop()
        flusher = asyncio.create_task(self._flush_loop())
        listener = asyncio.create_task(self._statistics_generated_loop())
        deadline = asyncio.get_running_loop().call_later(s.max_runtime_s, self.stop) if s.max_runtime_s else None
        try:
            async for item in self.stream:
                if isinstance(item, StreamGap):
                    await self._fill_gap(item)
                else:
                    self._on_event(item)
        finally:
            if deadline:
                deadline.cancel()
            for task in (flusher, listener):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def _on_event(self, event: StateChangedEvent) -> None:
        state = event.new_state
        if state is None:  # entity removed
            return
        if state.value is None:
            self.non_numeric_skipped += 1
            return
        self.buffer.add([Reading(ts=state.last_changed, entity_id=event.entity_id, value=state.value)])

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            self.buffer.flush_if_due()
            self._write_state()
            if self._settings_changed():
                self._log("Home Assistant URL or token changed in the settings: stopping, the sensor "
                          "restarts the stream with the new settings")
                self.stop()
                return

    def _settings_changed(self) -> bool:
        """Saved settings take effect without a restart of Dagster: checked every 30 s."""
        if self.connection_provider is None or time.monotonic() - self._settings_checked < 30.0:
            return False
        self._settings_checked = time.monotonic()
        try:
            return self.connection_provider() != (self.url, self._token)
        except Exception as exc:
            log.warning("could not re-read the Home Assistant settings: %s", exc)
            return False

    async def _statistics_generated_loop(self) -> None:
        """Note when HA finished compiling an hour (``recorder_hourly_statistics_generated``), so the
        statistics sensor can fetch it right away instead of waiting for minute 12."""
        attempt = 0
        while True:
            try:
                async with HomeAssistantClient(self.url, self._token) as client:
                    subscription = await client.subscribe_events(STATISTICS_GENERATED_EVENT)
                    attempt = 0
                    async for event in subscription:
                        fired = event.time_fired or datetime.now(UTC)
                        self._pending_state["statistics_generated_at"] = fired
                        self._write_state(force=True)
            except HomeAssistantError as exc:
                log.info("statistics-generated subscription: %s", exc)
            attempt += 1
            await asyncio.sleep(min(60.0, self.settings.backoff_initial * 2 ** min(attempt, 6)))

    async def _fill_gap(self, gap: StreamGap) -> None:
        """Re-read the gap's raw states from HA; upserts on (ts, entity) make overlaps harmless."""
        start = max(gap.start, datetime.now(UTC) - HISTORY_RETENTION)
        entity_ids = sorted(self.tracked_entity_ids())
        if not entity_ids or gap.end <= start:
            return
        try:
            async with HomeAssistantClient(self.url, self._token, command_timeout=120) as client:
                history = await client.history_during_period(entity_ids, start, gap.end)
        except HomeAssistantError as exc:
            self._log(f"gap fill {start.isoformat()} .. {gap.end.isoformat()} failed: {exc}; "
                      "the next reconnect retries it")
            self._pending_state["last_error"] = f"gap fill failed: {exc}"
            return
        readings = [Reading(ts=s.last_changed, entity_id=s.entity_id, value=s.value)
                    for states in history.values() for s in states
                    if s.value is not None and start <= s.last_changed <= gap.end]
        self.buffer.add(readings)
        self.gap_filled += len(readings)
        self._log(f"gap fill {start.isoformat()} .. {gap.end.isoformat()}: {len(readings)} readings "
                  f"of {len(entity_ids)} entities from history")
        self._pending_state["last_gap_fill"] = {"start": start, "end": gap.end, "readings": len(readings)}

    # -- stream state ------------------------------------------------------------------------------

    def _on_status(self, status: str, **info: Any) -> None:
        previous = self._pending_state.get("status")
        if status != previous:
            detail = f" (retry in {info['retry_in']:.1f} s)" if "retry_in" in info else ""
            error = f": {info['last_error']}" if info.get("last_error") and status != "streaming" else ""
            self._log(f"stream {status}{detail}{error}")
        self._pending_state.update(
            status=status, connected_since=info.get("connected_since"), last_event=info.get("last_event"),
            last_heartbeat=info.get("last_heartbeat"), last_error=info.get("last_error"),
            reconnects=info.get("reconnects", 0), events_received=info.get("events_total", 0),
        )
        self._write_state(force=status != previous)

    def _write_state(self, force: bool = False) -> None:
        """Persist stream state at most once a second (or at once on a status change)."""
        now = time.monotonic()
        if not force and now - self._last_state_write < STATE_WRITE_INTERVAL_S:
            return
        self._last_state_write = now
        written = self.buffer.stats.written - self._reported_written
        skipped = self.non_numeric_skipped - self._reported_skipped
        changes = {k: v for k, v in self._pending_state.items()}
        changes.update(updated_at=datetime.now(UTC), buffered=len(self.buffer),
                       store_error=self.buffer.stats.last_error)
        try:
            self.documents.update_stream_state(changes, {"events_written": written, "non_numeric_skipped": skipped})
        except Exception as exc:  # the state is informative; never let it stop ingestion
            log.warning("could not record stream state: %s", exc)
            return
        self._reported_written += written
        self._reported_skipped += skipped
