"""Launching and watching Dagster work through the webserver's GraphQL API.

Going through the webserver (instead of executing in-process) means every backfill and run started by
``make demo`` or the chart API shows up in the Dagster UI, queued and executed by the daemon.

The sync log (:meth:`DagsterGraphQLClient.sync_log`) is read from Dagster's run storage, not from the
document store's ``sync_log``: the assets write that one only when they succeed (a failing asset raises
first), without durations and without queued or running work, while Dagster has every run and backfill
with its status, partitions, timing, error and the materialization metadata ``rows_written`` -- exactly
what its UI shows.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

log = logging.getLogger(__name__)

# The compose workspace names the location ``energy_pipeline``; ``dagster dev -m energy_pipeline.definitions``
# names it after the module. Jobs are looked up in whichever location has them, this one first.
LOCATION_NAME = "energy_pipeline"
REPOSITORY_NAME = "__repository__"
ASSET_JOB = "__ASSET_JOB"
HOURLY_ASSET = "hourly_energy_statistics"
LEGACY_ASSET = "legacy_energy_statistics"
ENTITIES_ASSET = "energy_entities"
DISCOVERY_JOB = "energy_entities_job"
HOURLY_KEY_FORMAT = "%Y-%m-%d-%H:%M"
MONTHLY_KEY_FORMAT = "%Y-%m-%d"
# What the sync log lists: the kind of each asset, and the jobs that materialize them.
ASSET_KINDS: dict[str, str] = {HOURLY_ASSET: "statistics", LEGACY_ASSET: "migration", ENTITIES_ASSET: "discovery"}
JOB_ASSETS: dict[str, tuple[str, ...]] = {
    "hourly_energy_statistics_job": (HOURLY_ASSET,),
    "legacy_migration_job": (LEGACY_ASSET,),
    DISCOVERY_JOB: (ENTITIES_ASSET,),
}
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"
BACKFILL_TAG = "dagster/backfill"
SUCCESS_STATUSES = frozenset({"SUCCESS", "COMPLETED", "COMPLETED_SUCCESS"})
MAX_FAILURE_EVENTS = 5000


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

PARTITION_BOUNDS = """
query PartitionBounds($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    __typename
    ... on AssetNode {
      first: partitionKeyConnection(limit: 1, ascending: true) { results }
      last: partitionKeyConnection(limit: 1, ascending: false) { results }
    }
    ... on AssetNotFoundError { message }
  }
}
"""

WORKSPACE_JOBS = """
query WorkspaceJobs {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        locationOrLoadError {
          __typename
          ... on RepositoryLocation { repositories { name pipelines { name } } }
          ... on PythonError { message }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""

_RUN_FIELDS = "runId jobName status creationTime startTime endTime tags { key value } assetSelection { path }"
_RUNS = f"""{{ __typename ... on Runs {{ results {{ {_RUN_FIELDS} }} }}
  ... on InvalidPipelineRunsFilterError {{ message }} ... on PythonError {{ message }} }}"""
SYNC_LOG = f"""
query SyncLog($limit: Int!) {{
  backfills: partitionBackfillsOrError(limit: $limit) {{
    __typename
    ... on PartitionBackfills {{
      results {{
        id status numPartitions timestamp endTimestamp title
        assetSelection {{ path }}
        error {{ message }}
        assetBackfillData {{ rootTargetedPartitions {{ partitionKeys ranges {{ start end }} }} }}
        runs(limit: 200) {{ runId status }}
      }}
    }}
    ... on PythonError {{ message }}
  }}
  {ASSET_JOB}: runsOrError(filter: {{pipelineName: "{ASSET_JOB}"}}, limit: $limit) {_RUNS}
""" + "".join(f'  {job}: runsOrError(filter: {{pipelineName: "{job}"}}, limit: $limit) {_RUNS}\n'
              for job in JOB_ASSETS) + "}\n"

_META = """metadataEntries { label __typename ... on IntMetadataEntry { intValue }
  ... on FloatMetadataEntry { floatValue } ... on TextMetadataEntry { text } ... on BoolMetadataEntry { boolValue } }"""
_ERROR = "message errorChain { error { message } }"
_DETAILS = f"__typename ... on Run {{ runId assetMaterializations {{ assetKey {{ path }} {_META} }} }}"
_DETAILS_FAILED = (f"__typename ... on Run {{ runId assetMaterializations {{ assetKey {{ path }} {_META} }} "
                   f"eventConnection(limit: {MAX_FAILURE_EVENTS}) {{ events {{ __typename "
                   f"... on ExecutionStepFailureEvent {{ error {{ {_ERROR} }} }} "
                   f"... on RunFailureEvent {{ message error {{ {_ERROR} }} }} }} }} }}")


class DagsterGraphQLClient:
    """Small synchronous client; every call has a timeout and retries connection failures with backoff."""

    def __init__(self, url: str, timeout: float = 15.0, attempts: int = 3,
                 transport: httpx.BaseTransport | None = None):
        self.url = url
        self.timeout = timeout
        self.attempts = attempts
        self._transport = transport
        self._job_locations: dict[str, str] = {}

    @property
    def ui_url(self) -> str:
        """The Dagster UI's base address (the GraphQL endpoint without ``/graphql``)."""
        return self.url[: -len("/graphql")] if self.url.endswith("/graphql") else self.url.rstrip("/")

    def _post(self, payload: dict[str, Any]) -> httpx.Response:
        with httpx.Client(timeout=self.timeout, transport=self._transport) as client:
            return client.post(self.url, json=payload)

    def execute(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """``data`` of the answer. :class:`DagsterUnavailableError` when nothing (or no GraphQL server) answers
        at the address, :class:`DagsterGraphQLError` when the webserver reports errors."""
        delay = 0.5
        for attempt in range(1, self.attempts + 1):
            try:
                response = self._post({"query": query, "variables": variables or {}})
                break
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # Only failures to connect are retried: the request never arrived, so a launch cannot repeat.
                if attempt == self.attempts:
                    raise DagsterUnavailableError(
                        f"Dagster webserver at {self.url} is not reachable ({type(exc).__name__}: {exc}); "
                        "is `dagster dev` / the webserver service running?") from None
                time.sleep(delay + random.uniform(0, delay / 2))
                delay *= 2
            except httpx.TransportError as exc:
                raise DagsterUnavailableError(
                    f"Dagster webserver at {self.url} is not reachable: no complete answer within {self.timeout:g} s "
                    f"({type(exc).__name__}: {exc})") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not ({"data", "errors"} & set(body)):
            if response.status_code >= 500:
                raise DagsterUnavailableError(f"Dagster webserver at {self.url} answered HTTP {response.status_code}")
            raise DagsterUnavailableError(
                f"Dagster webserver at {self.url} is not reachable: the address answered HTTP "
                f"{response.status_code} without a GraphQL response; DAGSTER_GRAPHQL_URL must be the webserver's "
                "/graphql endpoint (e.g. http://127.0.0.1:3000/graphql)")
        if body.get("errors"):
            raise DagsterGraphQLError("; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e)
                                                for e in body["errors"]))
        if not isinstance(body.get("data"), dict):
            raise DagsterGraphQLError(f"Dagster webserver at {self.url} answered without data")
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

    def job_location(self, job_name: str) -> str:
        """The code location that has ``job_name``: ``energy_pipeline`` when it has it, else the first that does."""
        if job_name in self._job_locations:
            return self._job_locations[job_name]
        workspace = self.execute(WORKSPACE_JOBS)["workspaceOrError"]
        if workspace["__typename"] != "Workspace":
            raise DagsterGraphQLError(f"Dagster cannot list its code locations: {workspace.get('message')}")
        found: list[str] = []
        problems: list[str] = []
        for entry in workspace["locationEntries"]:
            location = entry.get("locationOrLoadError") or {}
            if location.get("__typename") == "PythonError":
                problems.append(f"{entry['name']} failed to load: {location.get('message', '').strip()}")
                continue
            for repository in location.get("repositories") or []:
                if repository["name"] == REPOSITORY_NAME and any(p["name"] == job_name
                                                                 for p in repository["pipelines"]):
                    found.append(entry["name"])
        if not found:
            loaded = ", ".join(e["name"] for e in workspace["locationEntries"]) or "none"
            why = "".join(f"; {p}" for p in problems)
            raise DagsterGraphQLError(f"no code location of the Dagster webserver at {self.url} has the job "
                                      f"{job_name!r} (locations: {loaded}){why}")
        location_name = LOCATION_NAME if LOCATION_NAME in found else found[0]
        self._job_locations[job_name] = location_name
        return location_name

    def launch_job(self, job_name: str, tags: dict[str, str] | None = None) -> str:
        params = {
            "selector": {"repositoryLocationName": self.job_location(job_name), "repositoryName": REPOSITORY_NAME,
                         "jobName": job_name},
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]},
        }
        result = self.execute(LAUNCH_RUN, {"params": params})["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            message = result.get("message") or "; ".join(e["message"] for e in result.get("errors", []))
            raise DagsterGraphQLError(f"run of {job_name} refused: {message or result['__typename']}")
        return result["run"]["runId"]

    def partition_bounds(self, asset_key: str) -> tuple[str, str] | None:
        """First and last partition key of an asset as the webserver's definitions have them right now (for a
        time-partitioned asset the last one is the last complete window); None when it has no partitions."""
        result = self.execute(PARTITION_BOUNDS, {"key": {"path": [asset_key]}})["assetNodeOrError"]
        if result["__typename"] != "AssetNode":
            raise DagsterGraphQLError(f"asset {asset_key!r}: {result.get('message', result['__typename'])}")
        first, last = result.get("first"), result.get("last")
        if not first or not last or not first["results"] or not last["results"]:
            return None
        return first["results"][0], last["results"][0]

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

    # -- sync log ------------------------------------------------------------------------------------------

    def sync_log(self, limit: int) -> list[SyncRecord]:
        """Recent runs and backfills of the statistics, migration and discovery assets, newest first, without
        the details of :meth:`add_details` (so a caller can filter before paying for those). Up to ``limit``
        of each source (backfills, and runs of each job) are read, so more than ``limit`` may come back."""
        data = self.execute(SYNC_LOG, {"limit": limit})
        records: list[SyncRecord] = []
        backfills = data["backfills"]
        if backfills["__typename"] != "PartitionBackfills":
            raise DagsterGraphQLError(f"Dagster cannot list backfills: {backfills.get('message')}")
        for backfill in backfills["results"]:
            record = backfill_record(backfill)
            if record is not None:
                records.append(record)
        seen: set[str] = set()
        for job in (ASSET_JOB, *JOB_ASSETS):
            runs = data[job]
            if runs["__typename"] != "Runs":
                raise DagsterGraphQLError(f"Dagster cannot list the runs of {job}: {runs.get('message')}")
            for run in runs["results"]:
                record = run_record(run)
                if record is not None and record.id not in seen:
                    seen.add(record.id)
                    records.append(record)
        records.sort(key=lambda r: (r.created_at or 0.0, r.id), reverse=True)
        return records

    def add_details(self, records: Sequence[SyncRecord]) -> None:
        """Fill ``rows_written``, ``metadata`` and ``error`` from each run's materializations and failure events
        (one request); a backfill gets the rows of its runs and the error of its first failed run."""
        run_ids = list(dict.fromkeys([r.id for r in records if r.type == "run"] +
                                     [run_id for r in records if r.type == "backfill" for run_id in r.run_ids]))
        if not run_ids:
            return
        failed = {r.id for r in records if r.type == "run" and r.status == "FAILURE"}
        failed |= {run_id for r in records if r.type == "backfill" for run_id in r.failed_run_ids}
        details = self._run_details(run_ids, failed)
        for record in records:
            if record.type == "run":
                record.apply(details.get(record.id))
            else:
                runs = [details[run_id] for run_id in record.run_ids if run_id in details]
                rows = [d.rows_written for d in runs if d.rows_written is not None]
                record.rows_written = sum(rows) if rows else None
                if record.error is None:
                    record.error = next((d.error for d in runs if d.error), None)

    def _run_details(self, run_ids: Sequence[str], with_failures: set[str]) -> dict[str, RunDetails]:
        variables = {f"r{i}": run_id for i, run_id in enumerate(run_ids)}
        declarations = ", ".join(f"$r{i}: ID!" for i in range(len(run_ids)))
        fields = "\n".join(
            f"  r{i}: runOrError(runId: $r{i}) {{ {_DETAILS_FAILED if run_id in with_failures else _DETAILS} }}"
            for i, run_id in enumerate(run_ids))
        data = self.execute(f"query RunDetails({declarations}) {{\n{fields}\n}}", variables)
        out: dict[str, RunDetails] = {}
        for alias, run_id in variables.items():
            result = data.get(alias) or {}
            if result.get("__typename") == "Run":
                out[run_id] = run_details(result)
        return out

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


# -- sync log records ------------------------------------------------------------------------------------------


@dataclass
class RunDetails:
    rows_written: int | None
    metadata: dict[str, Any]
    error: str | None


@dataclass
class SyncRecord:
    """One run or backfill as the sync log shows it; times are epoch seconds."""

    type: str  # "run" | "backfill"
    id: str
    kind: str  # "statistics" | "migration" | "discovery"
    assets: list[str]
    status: str
    created_at: float | None
    started_at: float | None = None
    ended_at: float | None = None
    job_name: str | None = None
    backfill_id: str | None = None
    title: str | None = None
    partition_first: str | None = None
    partition_last: str | None = None
    partition_count: int | None = None
    rows_written: int | None = None
    error: str | None = None
    run_ids: list[str] = field(default_factory=list)
    failed_run_ids: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.status in SUCCESS_STATUSES

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return max(0.0, self.ended_at - self.started_at)

    def time_range(self) -> tuple[datetime, datetime] | None:
        """The hours the record covers (UTC, end exclusive); None for discovery or without partitions."""
        if self.partition_first is None or self.partition_last is None:
            return None
        return partition_range(self.kind, self.partition_first, self.partition_last)

    def apply(self, details: RunDetails | None) -> None:
        if details is None:
            return
        self.rows_written = details.rows_written
        self.metadata = details.metadata
        self.error = self.error or details.error


def _asset_names(selection: Iterable[dict[str, Any]] | None) -> list[str]:
    return ["/".join(a["path"]) for a in selection or []]


def _kind(assets: Sequence[str]) -> str | None:
    for asset in (HOURLY_ASSET, LEGACY_ASSET, ENTITIES_ASSET):
        if asset in assets:
            return ASSET_KINDS[asset]
    return None


def run_record(run: dict[str, Any]) -> SyncRecord | None:
    """A run of one of our jobs, or of the asset job with one of our assets; None for anything else."""
    assets = _asset_names(run.get("assetSelection")) or list(JOB_ASSETS.get(run["jobName"], ()))
    relevant = [a for a in assets if a in ASSET_KINDS]
    kind = _kind(relevant)
    if kind is None:
        return None
    tags = {t["key"]: t["value"] for t in run.get("tags") or []}
    first = tags.get(RANGE_START_TAG) or tags.get(PARTITION_TAG)
    last = tags.get(RANGE_END_TAG) or tags.get(PARTITION_TAG)
    record = SyncRecord(type="run", id=run["runId"], kind=kind, assets=relevant, status=run["status"],
                        created_at=run.get("creationTime"), started_at=run.get("startTime"),
                        ended_at=run.get("endTime"), job_name=run["jobName"], backfill_id=tags.get(BACKFILL_TAG),
                        partition_first=first, partition_last=last)
    if first and last and kind != "discovery":
        record.partition_count = partition_count(kind, first, last)
    return record


def backfill_record(backfill: dict[str, Any]) -> SyncRecord | None:
    """A backfill of one of our assets; None for anything else."""
    relevant = [a for a in _asset_names(backfill.get("assetSelection")) if a in ASSET_KINDS]
    kind = _kind(relevant)
    if kind is None:
        return None
    targeted = ((backfill.get("assetBackfillData") or {}).get("rootTargetedPartitions") or {})
    ranges = targeted.get("ranges") or []
    keys = sorted(targeted.get("partitionKeys") or [])
    first = ranges[0]["start"] if ranges else (keys[0] if keys else None)
    last = ranges[-1]["end"] if ranges else (keys[-1] if keys else None)
    return SyncRecord(type="backfill", id=backfill["id"], kind=kind, assets=relevant, status=backfill["status"],
                      created_at=backfill.get("timestamp"), started_at=backfill.get("timestamp"),
                      ended_at=backfill.get("endTimestamp"), backfill_id=backfill["id"], title=backfill.get("title"),
                      partition_first=first, partition_last=last, partition_count=backfill.get("numPartitions"),
                      error=_first_line((backfill.get("error") or {}).get("message")),
                      run_ids=[r["runId"] for r in backfill.get("runs") or []],
                      failed_run_ids=[r["runId"] for r in backfill.get("runs") or [] if r.get("status") == "FAILURE"])


def _first_line(message: str | None) -> str | None:
    if not message:
        return None
    text = message.strip()
    return text or None


def _error_message(error: dict[str, Any] | None) -> str | None:
    """The root cause of a Dagster error (the innermost of its chain): Dagster wraps a step's exception in
    ``DagsterExecutionStepExecutionError: Error occurred while executing op ...``, which says nothing."""
    if not error:
        return None
    chain = [link.get("error") or {} for link in error.get("errorChain") or []]
    for candidate in reversed(chain):
        if candidate.get("message"):
            return _first_line(candidate["message"])
    return _first_line(error.get("message"))


def run_details(run: dict[str, Any]) -> RunDetails:
    """Rows written (the ``rows_written`` metadata: a run of many partitions repeats the same run-wide
    metadata on every partition's materialization, so it is taken once per asset, not summed over partitions),
    the first materialization's numeric and text metadata, and the first failure's root cause."""
    rows_by_asset: dict[str, int] = {}
    metadata: dict[str, Any] = {}
    for event in run.get("assetMaterializations") or []:
        asset = "/".join(event["assetKey"]["path"])
        entries = {e["label"]: _meta_value(e) for e in event.get("metadataEntries") or []}
        if not metadata:
            metadata = {k: v for k, v in entries.items() if v is not None}
        rows = entries.get("rows_written")
        if isinstance(rows, int) and asset not in rows_by_asset:
            rows_by_asset[asset] = rows
    error = None
    for event in (run.get("eventConnection") or {}).get("events") or []:
        if event.get("__typename") == "ExecutionStepFailureEvent":
            error = _error_message(event.get("error"))
            break
        if event.get("__typename") == "RunFailureEvent":
            error = _error_message(event.get("error")) or _first_line(event.get("message"))
    return RunDetails(rows_written=sum(rows_by_asset.values()) if rows_by_asset else None, metadata=metadata,
                      error=error)


def _meta_value(entry: dict[str, Any]) -> Any:
    for key in ("intValue", "floatValue", "text", "boolValue"):
        if key in entry:
            return entry[key]
    return None


# -- partition keys -------------------------------------------------------------------------------------------


def hourly_partition_keys(start: datetime, end: datetime) -> list[str]:
    """Keys of the UTC hours overlapping ``[start, end)`` (aware datetimes), oldest first."""
    if end <= start:
        return []
    hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    end = end.astimezone(UTC)
    keys = []
    while hour < end:
        keys.append(hour.strftime(HOURLY_KEY_FORMAT))
        hour += timedelta(hours=1)
    return keys


def parse_hourly_key(key: str) -> datetime:
    return datetime.strptime(key, HOURLY_KEY_FORMAT).replace(tzinfo=UTC)


def _next_month(day: datetime) -> datetime:
    return day.replace(year=day.year + day.month // 12, month=day.month % 12 + 1, day=1)


def partition_range(kind: str, first: str, last: str) -> tuple[datetime, datetime] | None:
    """UTC ``[start, end)`` of the partitions ``first .. last`` (hours of the statistics, months of the
    migration); None when the keys do not parse."""
    try:
        if kind == "statistics":
            return parse_hourly_key(first), parse_hourly_key(last) + timedelta(hours=1)
        if kind == "migration":
            start = datetime.strptime(first, MONTHLY_KEY_FORMAT).replace(tzinfo=UTC)
            end = datetime.strptime(last, MONTHLY_KEY_FORMAT).replace(tzinfo=UTC)
            return start, _next_month(end)
    except ValueError:
        return None
    return None


def partition_count(kind: str, first: str, last: str) -> int | None:
    span = partition_range(kind, first, last)
    if span is None:
        return None
    start, end = span
    if kind == "statistics":
        return int((end - start) / timedelta(hours=1))
    return (end.year - start.year) * 12 + end.month - start.month
