"""Readings over real HTTP: the list, and the server-sent event stream of readings stored after connecting."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from energy_pipeline.storage.timeseries import Reading
from energy_pipeline_tests.api.conftest import GRID, PEER, SOLAR, LiveApi, add_entities


def test_readings_since_and_limit(live_api: LiveApi, client: httpx.Client) -> None:
    add_entities(live_api.documents)
    live_api.documents.update_settings({"ha_time_zone": "Europe/Berlin"})
    base = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
    live_api.timeseries.write_readings([Reading(base + timedelta(minutes=i), GRID, 100.0 + i) for i in range(10)]
                                       + [Reading(base, SOLAR, 5.0)])
    body = client.get(f"/api/readings/{GRID}", params={"since": "2026-07-01T12:05", "limit": 3}).json()
    assert body["time_zone"] == "Europe/Berlin"
    assert body["readings"] == [
        {"entity_id": GRID, "ts": "2026-07-01T12:05:00+02:00", "value": 105.0},
        {"entity_id": GRID, "ts": "2026-07-01T12:06:00+02:00", "value": 106.0},
        {"entity_id": GRID, "ts": "2026-07-01T12:07:00+02:00", "value": 107.0},
    ]
    recent = client.get(f"/api/readings/{GRID}").json()["readings"]
    assert recent == []  # default: the last hour
    assert client.get("/api/readings/sensor.nope").status_code == 404
    assert client.get(f"/api/readings/{GRID}", params={"limit": 0}).status_code == 422
    assert client.get(f"/api/readings/{GRID}", params={"since": "soon"}).status_code == 400


class SseReader:
    """Reads an event stream in a thread and hands out parsed events and comments."""

    def __init__(self, client: httpx.Client, url: str, params: dict[str, str] | None = None,
                 headers: dict[str, str] | None = None):
        self.items: queue.Queue[tuple[str, str | None, dict | str]] = queue.Queue()
        self.status: int | None = None
        self.content_type: str | None = None
        self._response: httpx.Response | None = None
        self._stop = threading.Event()
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(client, url, params, headers), daemon=True)
        self._thread.start()
        assert self._opened.wait(10), "the stream did not open"

    def _run(self, client: httpx.Client, url: str, params: dict | None, headers: dict | None) -> None:
        try:
            with client.stream("GET", url, params=params, headers=headers, timeout=30) as response:
                self._response = response
                self.status = response.status_code
                self.content_type = response.headers.get("content-type")
                self._opened.set()
                self._read(response)
        except httpx.HTTPError:
            if not self._stop.is_set():
                raise

    def _read(self, response: httpx.Response) -> None:
        event: dict[str, str] = {}
        for line in response.iter_lines():
            if self._stop.is_set():
                return
            if line.startswith(":"):
                self.items.put(("comment", None, line[1:].strip()))
            elif line == "":
                if "data" in event:
                    self.items.put((event.get("event", "message"), event.get("id"), json.loads(event["data"])))
                event = {}
            else:
                key, _, value = line.partition(":")
                event[key] = value.lstrip(" ")

    def next(self, kind: str, timeout: float = 10.0) -> tuple[str | None, dict | str]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {kind!r} item within {timeout} s")
            try:
                got_kind, event_id, data = self.items.get(timeout=remaining)
            except queue.Empty:
                continue
            if got_kind == kind:
                return event_id, data

    def close(self) -> None:
        """Hang up, as a browser leaving the page does (the reader stops at the next line: a heartbeat at the
        latest, which the test servers send twice a second)."""
        self._stop.set()
        self._thread.join(timeout=10)
        assert not self._thread.is_alive(), "the stream reader did not stop"


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def test_stream_sends_readings_stored_after_connecting(live_api: LiveApi) -> None:
    add_entities(live_api.documents)
    now = datetime.now(UTC)
    live_api.timeseries.write_readings([Reading(now - timedelta(minutes=5), GRID, 1.0)])  # before: not sent
    client = live_api.client()
    stream = SseReader(client, "/api/readings/stream", params={"entity_ids": f"{GRID},{SOLAR}"})
    assert stream.status == 200 and stream.content_type.startswith("text/event-stream")
    stream.next("comment")  # ": connected"
    connected = datetime.now(UTC)
    live_api.timeseries.write_readings([Reading(connected + timedelta(seconds=3), GRID, 42.5)])
    event_id, data = stream.next("reading")
    assert data["entity_id"] == GRID and data["value"] == 42.5 and event_id.isdigit()
    # stamped before the newest reading sent but written later (a batched writer): still delivered
    live_api.timeseries.write_readings([Reading(connected + timedelta(seconds=1), SOLAR, 7.0),
                                        Reading(connected + timedelta(seconds=2), PEER, 9.0)])  # not subscribed
    _, late = stream.next("reading")
    assert late["entity_id"] == SOLAR and late["value"] == 7.0
    live_api.timeseries.write_readings([Reading(connected + timedelta(seconds=4), GRID, 43.0)])
    _, following = stream.next("reading")
    assert following["value"] == 43.0  # nothing sent twice, nothing from PEER
    stream.close()


def test_stream_heartbeat_and_resume_after_last_event_id(live_api_factory: Callable[..., LiveApi]) -> None:
    live = live_api_factory(heartbeat_interval_s=0.3)
    add_entities(live.documents)
    stream = SseReader(live.client(), "/api/readings/stream")
    assert stream.next("comment")[1] == "connected"
    started = time.monotonic()
    assert stream.next("comment", timeout=5)[1] == "heartbeat"
    assert 0.2 < time.monotonic() - started < 2
    stream.close()
    base = datetime.now(UTC) - timedelta(seconds=30)
    live.timeseries.write_readings([Reading(base, GRID, 1.0), Reading(base + timedelta(seconds=1), GRID, 2.0)])
    first_id = str(int((base - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1)))
    resumed = SseReader(live.client(), "/api/readings/stream", params={"since": base.isoformat()},
                        headers={"Last-Event-ID": first_id})
    _, data = resumed.next("reading")
    assert data["value"] == 2.0
    resumed.close()


def test_stream_stops_when_the_client_disconnects(live_api: LiveApi) -> None:
    add_entities(live_api.documents)
    calls: list[float] = []
    real = live_api.state.timeseries.read_readings

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(time.monotonic())
        return real(*args, **kwargs)

    live_api.state.timeseries.raw.read_readings = counting
    try:
        with httpx.Client(base_url=live_api.url) as client, client.stream("GET", "/api/readings/stream") as response:
            assert response.status_code == 200
            wait_until(lambda: len(calls) >= 3)
        count = len(calls)
        time.sleep(1.0)
        assert len(calls) <= count + 1, "the server kept polling for a client that left"
    finally:
        del live_api.state.timeseries.raw.read_readings


def test_stream_rejects_unknown_entities_and_too_many(live_api: LiveApi, client: httpx.Client) -> None:
    assert client.get("/api/readings/stream", params={"entity_ids": "sensor.nope"}).status_code == 404
    many = ",".join(f"sensor.e{i}" for i in range(51))
    assert client.get("/api/readings/stream", params={"entity_ids": many}).status_code == 400


@pytest.mark.parametrize("path", ["/api/readings/stream", f"/api/readings/{GRID}"])
def test_store_failure_is_503_naming_the_store(live_api: LiveApi, client: httpx.Client, path: str) -> None:
    from energy_pipeline.storage.timeseries import StoreUnavailableError

    add_entities(live_api.documents)

    def broken(*args: object, **kwargs: object) -> object:
        raise StoreUnavailableError("connection refused")

    live_api.state.timeseries.raw.read_readings = broken  # behind the guard, as a real failure would be
    try:
        if path.endswith("stream"):
            stream = SseReader(client, path)
            _, data = stream.next("error")
            assert data["code"] == "store_unavailable" and "time-series store (sqlite)" in data["message"]
            stream.close()
        else:
            response = client.get(path)
            assert response.status_code == 503
            assert response.json()["error"]["message"].startswith("time-series store (sqlite) is unavailable")
    finally:
        del live_api.state.timeseries.raw.read_readings
