"""The Dagster GraphQL client without a webserver: error mapping, retries, location lookup and the parsing of
the sync log (payloads shaped like dagster-webserver 1.13's answers). The client against a real webserver is
tested in ``energy_pipeline_tests/api/test_operations.py``."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from energy_pipeline.orchestration import (
    DagsterGraphQLClient,
    DagsterGraphQLError,
    DagsterUnavailableError,
    backfill_record,
    hourly_partition_keys,
    partition_count,
    partition_range,
    run_details,
    run_record,
)
from energy_pipeline_tests.conftest import free_port

URL = "http://dagster.test/graphql"


def client_with(handler: Callable[[httpx.Request], httpx.Response], attempts: int = 3) -> DagsterGraphQLClient:
    return DagsterGraphQLClient(URL, timeout=2.0, attempts=attempts, transport=httpx.MockTransport(handler))


def test_nothing_listening_is_unavailable_with_the_address() -> None:
    url = f"http://127.0.0.1:{free_port()}/graphql"
    with pytest.raises(DagsterUnavailableError, match=rf"Dagster webserver at {url} is not reachable"):
        DagsterGraphQLClient(url, timeout=2.0, attempts=2).version()


def test_only_connection_failures_are_retried() -> None:
    calls: list[str] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append("connect")
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(DagsterUnavailableError):
        client_with(refuse, attempts=2).version()
    assert len(calls) == 2

    def slow(request: httpx.Request) -> httpx.Response:
        calls.append("read")
        raise httpx.ReadTimeout("slow", request=request)

    # a launch that timed out may have been executed: it is never sent twice
    with pytest.raises(DagsterUnavailableError, match="no complete answer"):
        client_with(slow).launch_asset_backfill("hourly_energy_statistics", ["2026-01-01-00:00"])
    assert calls.count("read") == 1


@pytest.mark.parametrize(("status", "content", "error", "text"), [
    (404, b"Not Found", DagsterUnavailableError, "DAGSTER_GRAPHQL_URL must be the webserver's /graphql endpoint"),
    (502, b"<html>bad gateway</html>", DagsterUnavailableError, "answered HTTP 502"),
    (200, b"[1, 2]", DagsterUnavailableError, "without a GraphQL response"),
    (400, json.dumps({"data": None, "errors": [{"message": "Cannot query field 'nope'"}]}).encode(),
     DagsterGraphQLError, "Cannot query field 'nope'"),
])
def test_answers_that_are_not_data(status: int, content: bytes, error: type[Exception], text: str) -> None:
    client = client_with(lambda request: httpx.Response(status, content=content))
    with pytest.raises(error, match=text):
        client.version()


def test_python_error_in_a_500_answer_is_a_refusal() -> None:
    body = {"data": {"launchPartitionBackfill": {"__typename": "PythonError", "message": "CheckError: no"}}}
    client = client_with(lambda request: httpx.Response(500, json=body))
    with pytest.raises(DagsterGraphQLError, match="backfill of hourly_energy_statistics refused: CheckError: no"):
        client.launch_asset_backfill("hourly_energy_statistics", ["2026-01-01-00:00"])


def workspace(*locations: tuple[str, list[str]]) -> dict:
    return {"data": {"workspaceOrError": {"__typename": "Workspace", "locationEntries": [
        {"name": name, "locationOrLoadError": {"__typename": "RepositoryLocation", "repositories": [
            {"name": "__repository__", "pipelines": [{"name": job} for job in jobs]}]}}
        for name, jobs in locations]}}}


def test_jobs_are_launched_in_the_location_that_has_them() -> None:
    sent: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        payload = json.loads(request.content)
        sent.append(payload)
        if "WorkspaceJobs" in payload["query"]:
            return httpx.Response(200, json=workspace(("other", ["x"]), ("energy_pipeline.definitions",
                                                                          ["energy_entities_job"])))
        return httpx.Response(200, json={"data": {"launchRun": {"__typename": "LaunchRunSuccess",
                                                                "run": {"runId": "run-1"}}}})

    client = client_with(handler)
    assert client.launch_job("energy_entities_job", tags={"a": "b"}) == "run-1"
    assert client.launch_job("energy_entities_job") == "run-1"
    selectors = [p["variables"]["params"]["selector"] for p in sent if "LaunchRun" in p["query"]]
    assert selectors[0] == {"repositoryLocationName": "energy_pipeline.definitions", "repositoryName": "__repository__",
                            "jobName": "energy_entities_job"}
    assert sum("WorkspaceJobs" in p["query"] for p in sent) == 1  # remembered

    both = client_with(lambda r: httpx.Response(200, json=workspace(("energy_pipeline.definitions", ["j"]),
                                                                    ("energy_pipeline", ["j"]))))
    assert both.job_location("j") == "energy_pipeline"
    with pytest.raises(DagsterGraphQLError, match=r"no code location .* has the job 'missing' \(locations: "
                                                  r"energy_pipeline.definitions, energy_pipeline\)"):
        both.job_location("missing")


def _run(run_id: str, job: str, status: str, assets: list[str] | None, tags: dict[str, str]) -> dict:
    return {"runId": run_id, "jobName": job, "status": status, "creationTime": 100.0, "startTime": 110.0,
            "endTime": 125.5, "tags": [{"key": k, "value": v} for k, v in tags.items()],
            "assetSelection": None if assets is None else [{"path": [a]} for a in assets]}


def test_run_records() -> None:
    record = run_record(_run("r1", "__ASSET_JOB", "SUCCESS", ["hourly_energy_statistics"], {
        "dagster/asset_partition_range_start": "2026-12-03-10:00", "dagster/asset_partition_range_end":
        "2026-12-03-13:00", "dagster/backfill": "bf1"}))
    assert record is not None
    assert (record.kind, record.backfill_id, record.partition_count) == ("statistics", "bf1", 4)
    assert record.duration_s == 15.5
    assert record.time_range() == (datetime(2026, 12, 3, 10, tzinfo=UTC), datetime(2026, 12, 3, 14, tzinfo=UTC))
    discovery = run_record(_run("r2", "energy_entities_job", "QUEUED", None, {}))
    assert discovery is not None and discovery.kind == "discovery" and discovery.time_range() is None
    assert not discovery.succeeded
    migration = run_record(_run("r3", "legacy_migration_job", "SUCCESS", ["legacy_energy_statistics"],
                                {"dagster/partition": "2025-11-01"}))
    assert migration is not None and migration.partition_count == 1
    assert migration.time_range() == (datetime(2025, 11, 1, tzinfo=UTC), datetime(2025, 12, 1, tzinfo=UTC))
    assert run_record(_run("r4", "ha_event_stream_job", "STARTED", None, {})) is None
    assert run_record(_run("r5", "__ASSET_JOB", "SUCCESS", ["daily_energy_summary"], {})) is None


def test_backfill_record() -> None:
    record = backfill_record({
        "id": "bf1", "status": "COMPLETED_FAILED", "numPartitions": 48, "timestamp": 10.0, "endTimestamp": 70.0,
        "title": "API sync", "assetSelection": [{"path": ["hourly_energy_statistics"]}], "error": None,
        "assetBackfillData": {"rootTargetedPartitions": {"partitionKeys": None, "ranges": [
            {"start": "2026-12-01-00:00", "end": "2026-12-02-23:00"}]}},
        "runs": [{"runId": "a", "status": "SUCCESS"}, {"runId": "b", "status": "FAILURE"}]})
    assert record is not None and record.type == "backfill" and record.duration_s == 60.0
    assert (record.partition_first, record.partition_last, record.partition_count) == (
        "2026-12-01-00:00", "2026-12-02-23:00", 48)
    assert record.run_ids == ["a", "b"] and record.failed_run_ids == ["b"] and not record.succeeded
    assert backfill_record({"id": "x", "status": "REQUESTED", "assetSelection": [{"path": ["daily_energy_summary"]}],
                            "timestamp": 1.0}) is None


def test_run_details_rows_once_per_run_and_the_root_cause() -> None:
    meta = [{"label": "rows_written", "__typename": "IntMetadataEntry", "intValue": 32},
            {"label": "duration_s", "__typename": "FloatMetadataEntry", "floatValue": 0.06},
            {"label": "store", "__typename": "TextMetadataEntry", "text": "sqlite"},
            {"label": "missing_hours_table", "__typename": "MarkdownMetadataEntry"}]
    events = [{"assetKey": {"path": ["hourly_energy_statistics"]}, "metadataEntries": meta} for _ in range(4)]
    details = run_details({"assetMaterializations": events})
    # a run of 4 partitions repeats its run-wide metadata 4 times: 32 rows, not 128
    assert details.rows_written == 32 and details.error is None
    assert details.metadata == {"rows_written": 32, "duration_s": 0.06, "store": "sqlite"}
    failed = run_details({"assetMaterializations": [], "eventConnection": {"events": [
        {"__typename": "RunStartEvent"},
        {"__typename": "ExecutionStepFailureEvent", "error": {
            "message": "DagsterExecutionStepExecutionError: Error occurred while executing op \"x\":\n",
            "errorChain": [{"error": {"message": "HomeAssistantConnectionError: connection refused\n"}}]}},
        {"__typename": "RunFailureEvent", "message": "Execution of run failed.", "error": None}]}})
    assert failed.rows_written is None and failed.error == "HomeAssistantConnectionError: connection refused"
    only_run_failure = run_details({"eventConnection": {"events": [
        {"__typename": "RunFailureEvent", "message": "Run failed to start", "error": None}]}})
    assert only_run_failure.error == "Run failed to start"


def test_partition_keys() -> None:
    start = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    assert hourly_partition_keys(start, datetime(2026, 3, 29, 2, 15, tzinfo=UTC)) == [
        "2026-03-29-00:00", "2026-03-29-01:00", "2026-03-29-02:00"]
    assert hourly_partition_keys(start, start) == []
    assert partition_count("statistics", "2026-01-01-00:00", "2026-01-01-23:00") == 24
    assert partition_count("migration", "2025-11-01", "2026-02-01") == 4
    assert partition_range("migration", "2025-12-01", "2025-12-01") == (datetime(2025, 12, 1, tzinfo=UTC),
                                                                        datetime(2026, 1, 1, tzinfo=UTC))
    assert partition_range("statistics", "garbage", "2026-01-01-00:00") is None
    assert partition_range("discovery", "a", "b") is None
