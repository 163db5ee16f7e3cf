"""``/api/readings``: live readings as stored by the streaming job, as a list or as server-sent events.

The stream polls the store (every ``poll_interval_s``, 0.5 s by default) rather than listening to the
streaming job: the job runs in another process (a Dagster run), and the store is the one place both
see. Readings are keyed by the state's ``last_changed``, which can be older than the moment the
batch was written, so each poll looks back ``LOOKBACK`` before the newest reading sent and skips the
keys already sent: a reading written a few seconds late is still delivered, exactly once.

``stream`` is declared before ``{entity_id}`` so it is not taken for an entity id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from energy_pipeline.api.errors import ERROR_RESPONSES, ApiError
from energy_pipeline.api.schemas import ReadingOut, ReadingsOut
from energy_pipeline.api.state import MAX_TIME, ApiState, api_state, local_iso, parse_time, split_ids
from energy_pipeline.storage.buckets import micros_to_utc, utc_to_micros
from energy_pipeline.storage.timeseries import Reading

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/readings", tags=["readings"], responses=ERROR_RESPONSES)

LOOKBACK = timedelta(seconds=60)
POLL_LIMIT = 1000
MAX_STREAM_ENTITIES = 50


def _event(reading: Reading, tz: ZoneInfo) -> str:
    data = json.dumps({"entity_id": reading.entity_id, "ts": local_iso(reading.ts, tz), "value": reading.value})
    return f"id: {utc_to_micros(reading.ts)}\nevent: reading\ndata: {data}\n\n"


async def reading_events(request: Request, state: ApiState, entity_ids: list[str] | None, since: datetime,
                         tz: ZoneInfo) -> AsyncIterator[str]:
    """``reading`` events in time order, a ``: heartbeat`` comment every ``heartbeat_interval_s``; stops when
    the client goes away. A store failure is reported as an ``error`` event and polling goes on."""
    yield "retry: 3000\n: connected\n\n"
    sent: dict[tuple[datetime, str], None] = {}
    newest = since
    drain_from: datetime | None = None
    last_beat = time.monotonic()
    store_failing = False
    while not await request.is_disconnected():
        query_start = drain_from or max(since, newest - LOOKBACK)
        try:
            rows = await run_in_threadpool(state.timeseries.read_readings, entity_ids, query_start, MAX_TIME,
                                           POLL_LIMIT)
            store_failing = False
        except Exception as exc:  # report once, keep polling: the store may come back
            rows = []
            if not store_failing:
                if isinstance(exc, ApiError):
                    code, message = exc.code, exc.message
                else:
                    log.error("reading stream: %s: %s", type(exc).__name__, exc)
                    code, message = "internal_error", "reading the store failed; see the API log"
                yield f"event: error\ndata: {json.dumps({'code': code, 'message': message})}\n\n"
            store_failing = True
        for reading in rows:
            key = (reading.ts, reading.entity_id)
            if key in sent:
                continue
            sent[key] = None
            newest = max(newest, reading.ts)
            yield _event(reading, tz)
        cutoff = newest - LOOKBACK
        for key in [k for k in sent if k[0] < cutoff]:
            del sent[key]
        drain_from = rows[-1].ts if len(rows) >= POLL_LIMIT and rows[-1].ts > query_start else None
        if time.monotonic() - last_beat >= state.heartbeat_interval_s:
            last_beat = time.monotonic()
            yield ": heartbeat\n\n"
        if drain_from is None:
            await asyncio.sleep(state.poll_interval_s)


@router.get("/stream", summary="Live readings as server-sent events",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                             "description": "`event: reading` with data {entity_id, ts, value}; "
                                            "`: heartbeat` comments every 15 s"}})
async def stream(request: Request,
                 entity_ids: str | None = Query(default=None, description="Comma-separated; default every entity"),
                 since: str | None = Query(default=None, description="Send readings from this time on "
                                           "(ISO 8601); default now"),
                 last_event_id: str | None = Header(default=None, description="Set by EventSource on reconnect"),
                 state: ApiState = Depends(api_state)) -> StreamingResponse:
    """New readings as they are stored. Resumes after the ``Last-Event-ID`` (epoch microseconds) on reconnect."""
    zone = await run_in_threadpool(state.time_zone)
    tz = ZoneInfo(zone)
    ids = split_ids(entity_ids, max_count=MAX_STREAM_ENTITIES)
    if ids:
        await run_in_threadpool(state.entities, ids)
    start = parse_time(since, "since", tz) or datetime.now(UTC)
    if last_event_id and last_event_id.strip().isdigit():
        with contextlib.suppress(OverflowError):
            start = max(start, micros_to_utc(int(last_event_id.strip())) + timedelta(microseconds=1))
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(reading_events(request, state, ids, start, tz), media_type="text/event-stream",
                             headers=headers)


@router.get("/{entity_id}", response_model=ReadingsOut, summary="Stored live readings of one entity")
def readings(entity_id: str,
             since: str | None = Query(default=None, description="ISO 8601; naive = house time zone; "
                                       "default: one hour ago"),
             limit: int = Query(default=1000, ge=1, le=10_000, description="Earliest readings first"),
             state: ApiState = Depends(api_state)) -> ReadingsOut:
    """Readings with ``ts >= since``, oldest first, at most ``limit``."""
    zone = state.time_zone()
    tz = ZoneInfo(zone)
    start = parse_time(since, "since", tz) or datetime.now(UTC) - timedelta(hours=1)
    state.entities([entity_id])
    rows = state.timeseries.read_readings([entity_id], start, MAX_TIME, limit)
    return ReadingsOut(entity_id=entity_id, time_zone=zone,
                       readings=[ReadingOut(entity_id=r.entity_id, ts=local_iso(r.ts, tz), value=r.value)
                                 for r in rows])
