"""``POST /api/sync``, ``POST /api/entities/discover`` and ``GET /api/sync/log`` against a REAL dagster-webserver.

Each stack is a Home Assistant simulator (in this process), ``dagster-webserver -m energy_pipeline.definitions``
on a free loopback port with a temporary ``DAGSTER_HOME`` (telemetry off) and ``ENERGY_PIPELINE_HOME`` shared
with the API under test, and, for the end-to-end test only, ``dagster-daemon run`` with the same environment.
Every process is started in its own session and stopped by process group (runs launched by the daemon are in
its group too). Without a daemon, launched work stays queued (``REQUESTED`` backfills, ``QUEUED`` runs), which
is enough to see that the API created it in Dagster.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from energy_pipeline.orchestration import (
    HOURLY_ASSET,
    DagsterGraphQLClient,
    DagsterGraphQLError,
    DagsterUnavailableError,
)
from energy_pipeline.simulator.house import SimulatedHouse
from energy_pipeline.simulator.server import HomeAssistantSimulator
from energy_pipeline.storage.documents import EntityRecord
from energy_pipeline_tests.api.conftest import LiveApi
from energy_pipeline_tests.conftest import free_port

SIM_TOKEN = "operations-test-token-0123456789"
START_TIMEOUT_S = 120.0
RUN_TIMEOUT_S = 120.0
STOP_GRACE_S = 15.0
BIN = Path(sys.executable).parent
KEY = "%Y-%m-%d-%H:%M"
BACKFILL_DETAILS = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename ... on PartitionBackfill { id status numPartitions partitionNames title assetSelection { path } }
  }
}
"""
RUN_DETAILS = """
query Run($id: ID!) { runOrError(runId: $id) { __typename ... on Run { runId status jobName tags { key value } } } }
"""


@dataclass
class DagsterStack:
    """dagster-webserver (and optionally dagster-daemon) on a temporary instance, stopped by process group."""

    root: Path
    simulator: HomeAssistantSimulator
    port: int = field(default_factory=free_port)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in {
            "MONGODB_URI", "QUESTDB_ADDR", "QUESTDB_PG_DSN", "LEGACY_SQLITE_PATH", "ENERGY_PIPELINE_SECRET_KEY",
            "DAGSTER_GRAPHQL_URL"}}
        env.update(DAGSTER_HOME=str(self.root / "dagster"), ENERGY_PIPELINE_HOME=str(self.home),
                   HA_URL=self.simulator.http_url, HA_TOKEN=SIM_TOKEN, PYTHONUNBUFFERED="1")
        return env

    def client(self) -> DagsterGraphQLClient:
        return DagsterGraphQLClient(self.url, timeout=30.0, attempts=1)

    def _start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        with open(self.root / f"{name}.log", "ab") as log_file:
            process = subprocess.Popen(args, env=self.env, cwd=self.root, stdout=log_file, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        self.processes.append(process)
        return process

    def log(self, name: str) -> str:
        try:
            return (self.root / f"{name}.log").read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"

    def start_webserver(self) -> None:
        (self.root / "dagster").mkdir(parents=True, exist_ok=True)
        (self.root / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        process = self._start("webserver", [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(self.port),
                                            "-m", "energy_pipeline.definitions"])
        deadline = time.monotonic() + START_TIMEOUT_S
        client = DagsterGraphQLClient(self.url, timeout=5.0, attempts=1)
        while True:  # up, and the code location loaded (it knows the asset's partitions)
            if process.poll() is not None:
                pytest.fail(f"dagster-webserver exited with {process.returncode}:\n{self.log('webserver')}")
            try:
                if client.partition_bounds(HOURLY_ASSET):
                    return
            except (DagsterUnavailableError, DagsterGraphQLError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"dagster-webserver not ready within {START_TIMEOUT_S:.0f} s:\n{self.log('webserver')}")
            time.sleep(0.5)

    def start_daemon(self) -> None:
        self._start("daemon", [str(BIN / "dagster-daemon"), "run", "-m", "energy_pipeline.definitions"])

    def stop(self) -> None:
        for process in reversed(self.processes):
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + STOP_GRACE_S
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):  # the group may outlive its leader (code servers, runs)
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_GRACE_S)


@pytest.fixture(scope="module")
def simulator() -> Iterator[HomeAssistantSimulator]:
    house = SimulatedHouse(seed=8, days=3, tz="Europe/Berlin", ensure_dst_in_history=False)
    with HomeAssistantSimulator(house, token=SIM_TOKEN) as sim:
        yield sim


@pytest.fixture(scope="module")
def dagster(tmp_path_factory: pytest.TempPathFactory, simulator: HomeAssistantSimulator) -> Iterator[DagsterStack]:
    """One webserver for the module's tests that need no daemon."""
    stack = DagsterStack(tmp_path_factory.mktemp("dagster-stack"), simulator)
    try:
        stack.start_webserver()
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def api(dagster: DagsterStack, live_api_factory: Callable[..., LiveApi]) -> LiveApi:
    return live_api_factory({"ENERGY_PIPELINE_HOME": str(dagster.home), "DAGSTER_GRAPHQL_URL": dagster.url})


def this_hour() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def test_sync_creates_a_backfill_in_dagster(api: LiveApi, dagster: DagsterStack) -> None:
    response = api.client().post("/api/sync")
    assert response.status_code == 202, response.text
    body = response.json()
    last = this_hour() - timedelta(hours=1)
    expected = [(last - timedelta(hours=23 - i)).strftime(KEY) for i in range(24)]
    if body["partitions"] != expected:  # the hour turned between the two clocks
        last -= timedelta(hours=1)
        expected = [(last - timedelta(hours=23 - i)).strftime(KEY) for i in range(24)]
    assert body["partitions"] == expected and body["partition_count"] == 24
    assert body["asset"] == HOURLY_ASSET and body["ui_url"] == f"http://127.0.0.1:{dagster.port}/runs/b/" + \
        body["backfill_id"]
    backfill = dagster.client().execute(BACKFILL_DETAILS, {"id": body["backfill_id"]})["partitionBackfillOrError"]
    assert backfill["__typename"] == "PartitionBackfill", backfill
    assert backfill["status"] == "REQUESTED" and backfill["numPartitions"] == 24
    assert sorted(backfill["partitionNames"]) == expected
    assert backfill["assetSelection"] == [{"path": [HOURLY_ASSET]}] and backfill["title"].startswith("API sync")


def test_sync_of_an_explicit_range_and_its_errors(api: LiveApi, dagster: DagsterStack) -> None:
    client = api.client()
    start = this_hour() - timedelta(hours=5)
    response = client.post("/api/sync", json={"start": start.isoformat(), "end": (start + timedelta(
        hours=2, minutes=30)).isoformat()})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["partitions"] == [(start + timedelta(hours=i)).strftime(KEY) for i in range(3)]  # 2.5 h: 3 hours
    assert (body["start"], body["end"]) == (start.isoformat(), (start + timedelta(hours=3)).isoformat())
    status = dagster.client().backfill_status(body["backfill_id"])
    assert status == "REQUESTED"

    future = this_hour() + timedelta(hours=1)
    cases = [
        ({"start": "2024-06-01T00:00Z", "end": "2024-06-02T00:00Z"}, 400, "range_outside_partitions",
         "hourly_energy_statistics has partitions (UTC hours) from 2025-01-01-00:00 to"),
        ({"start": (future - timedelta(hours=2)).isoformat(), "end": (future + timedelta(hours=1)).isoformat()}, 400,
         "range_outside_partitions", "the last is the last complete hour"),
        ({"start": "2026-13-01"}, 400, "invalid_time", "start"),
        ({"start": "2026-01-02T00:00Z", "end": "2026-01-01T00:00Z"}, 400, "invalid_range", "must be after"),
        ({"start": "2025-01-01T00:00Z", "end": "2026-06-01T00:00Z"}, 400, "range_too_large", "366 days"),
        ({"hours": 3}, 422, "validation_error", "hours"),
    ]
    for payload, status_code, code, text in cases:
        response = client.post("/api/sync", json=payload)
        assert response.status_code == status_code, (payload, response.text)
        error = response.json()["error"]
        assert error["code"] == code and text in error["message"], (payload, error)


def test_discover_creates_a_run_in_dagster(api: LiveApi, dagster: DagsterStack) -> None:
    response = api.client().post("/api/entities/discover")
    assert response.status_code == 202, response.text
    body = response.json()
    run = dagster.client().execute(RUN_DETAILS, {"id": body["run_id"]})["runOrError"]
    assert run["__typename"] == "Run" and run["jobName"] == "energy_entities_job"
    assert run["status"] in {"QUEUED", "NOT_STARTED"}  # no daemon runs in this stack
    assert {"key": "energy_pipeline/launched_by", "value": "api"} in run["tags"]
    assert body["job_name"] == "energy_entities_job" and body["ui_url"].endswith(f"/runs/{body['run_id']}")


def test_sync_log_lists_backfills_and_runs(api: LiveApi, dagster: DagsterStack) -> None:
    client = api.client()
    backfill_id = client.post("/api/sync").json()["backfill_id"]
    run_id = client.post("/api/entities/discover").json()["run_id"]
    response = client.get("/api/sync/log", params={"limit": 50})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["source"] == "dagster" and body["dagster_url"] == f"http://127.0.0.1:{dagster.port}"
    entries = {e["id"]: e for e in body["entries"]}
    backfill, run = entries[backfill_id], entries[run_id]
    assert (backfill["type"], backfill["kind"], backfill["status"], backfill["partition_count"]) == (
        "backfill", "statistics", "REQUESTED", 24)
    assert backfill["hours_start"] and backfill["hours_end"] and backfill["rows_written"] is None
    assert (run["type"], run["kind"], run["status"], run["job_name"]) == ("run", "discovery", "QUEUED",
                                                                          "energy_entities_job")
    created = [e["created_at"] for e in body["entries"]]
    assert created == sorted(created, reverse=True)  # newest first
    assert len(client.get("/api/sync/log", params={"limit": 1}).json()["entries"]) == 1

    # entity filter: a queued backfill concerns every entity of its hours; discovery writes no rows of one
    api.documents.upsert_entities([EntityRecord("sensor.grid_energy_import", unit="kWh", role="grid_import")])
    filtered = client.get("/api/sync/log", params={"entity_id": "sensor.grid_energy_import", "limit": 50}).json()
    kinds = {e["kind"] for e in filtered["entries"]}
    assert backfill_id in {e["id"] for e in filtered["entries"]} and kinds == {"statistics"}
    assert all(e["entity_rows"] == 0 for e in filtered["entries"])
    unknown = client.get("/api/sync/log", params={"entity_id": "sensor.nope"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_entity"


def test_503_when_the_webserver_is_not_reachable(live_api_factory: Callable[..., LiveApi]) -> None:
    url = f"http://127.0.0.1:{free_port()}/graphql"
    live = live_api_factory({"DAGSTER_GRAPHQL_URL": url})
    client = live.client()
    for method, path in (("POST", "/api/sync"), ("POST", "/api/entities/discover"), ("GET", "/api/sync/log")):
        response = client.request(method, path)
        assert response.status_code == 503, (path, response.text)
        error = response.json()["error"]
        assert error["code"] == "dagster_unavailable", (path, error)
        assert error["message"].startswith(f"Dagster webserver at {url} is not reachable"), (path, error)
    # input errors are found before Dagster is asked
    assert client.post("/api/sync", json={"end": "tomorrow"}).status_code == 400
    assert client.get("/api/sync/log", params={"entity_id": "sensor.nope"}).status_code == 404
    assert client.get("/api/sync/log", params={"limit": 0}).status_code == 422


def wait_for(what: str, check: Callable[[], str], done: set[str], stack: DagsterStack) -> str:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    status = ""
    while time.monotonic() < deadline:
        status = check()
        if status in done:
            return status
        time.sleep(2.0)
    pytest.fail(f"{what} still {status} after {RUN_TIMEOUT_S:.0f} s:\n{stack.log('daemon')}")


def test_with_a_daemon_the_work_completes_and_the_log_shows_rows(
        tmp_path: Path, simulator: HomeAssistantSimulator, live_api_factory: Callable[..., LiveApi]) -> None:
    stack = DagsterStack(tmp_path / "stack", simulator)
    try:
        stack.start_webserver()
        stack.start_daemon()
        live = live_api_factory({"ENERGY_PIPELINE_HOME": str(stack.home), "DAGSTER_GRAPHQL_URL": stack.url})
        client, graphql = live.client(timeout=60.0), stack.client()

        run_id = client.post("/api/entities/discover").json()["run_id"]
        assert wait_for("discovery", lambda: graphql.run_status(run_id), {"SUCCESS", "FAILURE", "CANCELED"},
                        stack) == "SUCCESS"
        tracked = [e["entity_id"] for e in client.get("/api/entities", params={"tracked": True}).json()["entities"]]
        assert tracked

        start = this_hour() - timedelta(hours=4)
        sync = client.post("/api/sync", json={"start": start.isoformat(), "end": (start + timedelta(hours=3))
                                              .isoformat()})
        assert sync.status_code == 202, sync.text
        backfill_id = sync.json()["backfill_id"]
        final = wait_for("backfill", lambda: graphql.backfill_status(backfill_id),
                         {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}, stack)
        assert final == "COMPLETED_SUCCESS"

        stored = live.timeseries.count_statistics(None, start, start + timedelta(hours=3))
        body = client.get("/api/sync/log").json()
        entries = {e["id"]: e for e in body["entries"]}
        backfill = entries[backfill_id]
        assert backfill["status"] == "COMPLETED_SUCCESS" and backfill["rows_written"] == sum(stored.values()) > 0
        runs = [e for e in body["entries"] if e["type"] == "run" and e["backfill_id"] == backfill_id]
        assert runs and runs[0]["status"] == "SUCCESS" and runs[0]["rows_written"] == backfill["rows_written"]
        assert runs[0]["duration_s"] > 0 and runs[0]["error"] is None
        assert runs[0]["metadata"]["entities"] == len(tracked) and runs[0]["metadata"]["missing_hours"] == 0
        discovery = entries[run_id]
        assert discovery["status"] == "SUCCESS" and discovery["metadata"]["entities"] >= len(tracked)

        entity = tracked[0]
        filtered = client.get("/api/sync/log", params={"entity_id": entity}).json()["entries"]
        assert {e["id"] for e in filtered} >= {backfill_id, runs[0]["id"]} and run_id not in {e["id"] for e in filtered}
        assert all(e["entity_rows"] == 3 for e in filtered if e["id"] in {backfill_id, runs[0]["id"]})
    finally:
        stack.stop()
