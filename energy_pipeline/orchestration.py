"""Launching and watching Dagster work through the webserver's GraphQL API.

Going through the webserver (instead of executing in-process) means every backfill and run started by
``make demo`` or the chart API shows up in the Dagster UI, queued and executed by the daemon.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any

import httpx

log = logging.getLogger(__name__)

LOCATION_NAME = "energy_pipeline"
REPOSITORY_NAME = "__repository__"


class DagsterUnavailableError(RuntimeError):
    """The Dagster webserver did not answer; the message names its address."""


class DagsterGraphQLError(RuntimeError):
    """The webserver answered with an error (unknown asset, bad partition keys, ...)."""


LAUNCH_BACKFILL = """
mutation LaunchBackfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on PartitionKeysNotFoundError { message }
    ... on InvalidSubsetError { message }
    ... on UnauthorizedError { message }
  }
}
"""

LAUNCH_RUN = """
mutation LaunchRun($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PipelineNotFoundError { message }
    ... on InvalidSubsetError { message }
    ... on UnauthorizedError { message }
  }
}
"""

BACKFILL_STATUS = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { id status numPartitions partitionNames }
    ... on PythonError { message }
    ... on BackfillNotFoundError { message }
  }
}
"""

RUN_STATUS = """
query Run($id: ID!) {
  runOrError(runId: $id) {
    __typename
    ... on Run { runId status }
    ... on PythonError { message }
    ... on RunNotFoundError { message }
  }
}
"""

SERVER_INFO = "query { version }"


class DagsterGraphQLClient:
    """Small synchronous client; every call has a timeout and retries connection failures with backoff."""

    def __init__(self, url: str, timeout: float = 15.0, attempts: int = 3):
        self.url = url
        self.timeout = timeout
        self.attempts = attempts

    def execute(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        delay = 0.5
        for attempt in range(1, self.attempts + 1):
            try:
                response = httpx.post(self.url, json={"query": query, "variables": variables or {}},
                                      timeout=self.timeout)
                break
            except httpx.TransportError as exc:
                if attempt == self.attempts:
                    raise DagsterUnavailableError(
                        f"Dagster webserver at {self.url} is not reachable ({type(exc).__name__}: {exc}); "
                        "is `dagster dev` / the webserver service running?") from None
                time.sleep(delay + random.uniform(0, delay / 2))
                delay *= 2
        if response.status_code >= 500:
            raise DagsterUnavailableError(f"Dagster webserver at {self.url} answered HTTP {response.status_code}")
        body = response.json()
        if body.get("errors"):
            raise DagsterGraphQLError("; ".join(e.get("message", str(e)) for e in body["errors"]))
        return body["data"]

    def version(self) -> str:
        return self.execute(SERVER_INFO)["version"]

    def launch_asset_backfill(self, asset_key: str, partition_names: list[str], title: str | None = None) -> str:
        """Backfill ``partition_names`` of one asset; the daemon groups them into runs by its BackfillPolicy."""
        params: dict[str, Any] = {
            "assetSelection": [{"path": [asset_key]}],
            "partitionNames": partition_names,
        }
        if title:
            params["title"] = title
        result = self.execute(LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
        if result["__typename"] != "LaunchBackfillSuccess":
            raise DagsterGraphQLError(f"backfill of {asset_key} refused: {result.get('message', result['__typename'])}")
        return result["backfillId"]

    def launch_job(self, job_name: str, tags: dict[str, str] | None = None) -> str:
        params = {
            "selector": {"repositoryLocationName": LOCATION_NAME, "repositoryName": REPOSITORY_NAME,
                         "jobName": job_name},
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]},
        }
        result = self.execute(LAUNCH_RUN, {"params": params})["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            message = result.get("message") or "; ".join(e["message"] for e in result.get("errors", []))
            raise DagsterGraphQLError(f"run of {job_name} refused: {message or result['__typename']}")
        return result["run"]["runId"]

    def backfill_status(self, backfill_id: str) -> str:
        result = self.execute(BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]
        if result["__typename"] != "PartitionBackfill":
            raise DagsterGraphQLError(result.get("message", result["__typename"]))
        return result["status"]

    def run_status(self, run_id: str) -> str:
        result = self.execute(RUN_STATUS, {"id": run_id})["runOrError"]
        if result["__typename"] != "Run":
            raise DagsterGraphQLError(result.get("message", result["__typename"]))
        return result["status"]

    def wait_until_up(self, deadline_s: float) -> str:
        """Poll until the webserver answers; returns its version."""
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                return self.version()
            except (DagsterUnavailableError, httpx.HTTPError, ValueError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)
