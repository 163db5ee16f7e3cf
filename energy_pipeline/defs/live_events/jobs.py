"""The long-running stream job and the sensors around it."""

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg

from energy_pipeline.defs.ha_statistics.partitions import hourly_partitions_def
from energy_pipeline.defs.ha_statistics.schedules import (
    PARTITION_KEY_FORMAT,
    RANGE_END_TAG,
    RANGE_START_TAG,
    hour_already_fetched,
    hourly_energy_statistics_job,
)
from energy_pipeline.defs.live_events.ingest import EventIngestor, StreamSettings
from energy_pipeline.defs.resources import DocumentsResource, HomeAssistantResource, TimeSeriesResource

STREAM_JOB_NAME = "ha_event_stream_job"
# Restart after failures: 30 s, 1 min, 2 min, ... at most 15 min between attempts.
RESTART_BACKOFF_INITIAL_S = 30.0
RESTART_BACKOFF_MAX_S = 900.0
ACTIVE_STATUSES = {
    dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING,
}


class StreamConfig(dg.Config):
    heartbeat_interval: float = 30.0
    heartbeat_timeout: float = 10.0
    backoff_max: float = 60.0
    max_batch: int = 500
    max_delay: float = 1.0
    max_runtime_s: float | None = None


@dg.op(description="Subscribe to Home Assistant's state_changed events of the tracked entities and write "
       "numeric states to energy_readings in small batches, with heartbeat, reconnect and gap fill. Runs "
       "until terminated; flushes its buffer on the way out.")
def stream_state_changes(
    context: dg.OpExecutionContext,
    config: StreamConfig,
    home_assistant: HomeAssistantResource,
    timeseries: TimeSeriesResource,
    documents: DocumentsResource,
) -> dg.Output[None]:
    url, token = home_assistant.connection()
    settings = StreamSettings(heartbeat_interval=config.heartbeat_interval, heartbeat_timeout=config.heartbeat_timeout,
                              backoff_max=config.backoff_max, max_batch=config.max_batch, max_delay=config.max_delay,
                              max_runtime_s=config.max_runtime_s)
    ingestor = EventIngestor(url, token, timeseries.store, documents.store, Path(timeseries.home) / "spill",
                             settings, log_info=context.log.info, connection_provider=home_assistant.connection)
    context.log.info(f"connecting to Home Assistant at {ingestor.url} for {len(ingestor.tracked_entity_ids())} "
                     "tracked entities")
    started = time.monotonic()
    ingestor.run()  # "Terminate" in the UI interrupts this; run() flushes before the error propagates
    stats = ingestor.buffer.stats
    return dg.Output(None, metadata={
        "readings_written": stats.written, "non_numeric_skipped": ingestor.non_numeric_skipped,
        "gap_filled_readings": ingestor.gap_filled, "spilled": stats.spilled,
        "reconnects": ingestor.stream.reconnects if ingestor.stream else 0,
        "duration_s": round(time.monotonic() - started, 1),
    })


@dg.job(name=STREAM_JOB_NAME, description="Live readings from Home Assistant; kept running by ha_event_stream_sensor.",
        tags={"energy_pipeline/stream": "true"}, executor_def=dg.in_process_executor)
def ha_event_stream_job() -> None:
    stream_state_changes()


def restart_delay(consecutive_failures: int) -> float:
    if consecutive_failures <= 0:
        return 0.0
    return min(RESTART_BACKOFF_MAX_S, RESTART_BACKOFF_INITIAL_S * 2 ** (consecutive_failures - 1))


@dg.sensor(job=ha_event_stream_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Keeps exactly one stream run alive: starts it when none runs, restarts it after a "
           "failure with backoff (30 s doubling to 15 min), does nothing while one runs. Turn it off to stop "
           "streaming for good.")
def ha_event_stream_sensor(context: dg.SensorEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    records = context.instance.get_run_records(dg.RunsFilter(job_name=STREAM_JOB_NAME), limit=20)
    active = [r for r in records if r.dagster_run.status in ACTIVE_STATUSES]
    if active:
        run = active[0].dagster_run
        return dg.SkipReason(f"stream run {run.run_id[:8]} is {run.status.value.lower()}")
    failures = 0
    for record in records:
        if record.dagster_run.status != dg.DagsterRunStatus.FAILURE:
            break
        failures += 1
    if failures:
        ended = records[0].end_time or records[0].update_timestamp.timestamp()
        wait = restart_delay(failures) - (time.time() - ended)
        if wait > 0:
            message = (f"stream run {records[0].dagster_run.run_id[:8]} failed ({failures} in a row); "
                       f"restarting in {wait:.0f} s")
            context.log.info(message)
            return dg.SkipReason(message)
        context.log.info(f"restarting the stream after {failures} failed run(s)")
    return dg.RunRequest(tags={"energy_pipeline/restart_after_failures": str(failures)})


@dg.sensor(job=hourly_energy_statistics_job, minimum_interval_seconds=30,
           default_status=dg.DefaultSensorStatus.RUNNING, required_resource_keys={"documents"},
           description="Fetches the hour Home Assistant just compiled, as soon as the stream sees HA's "
           "recorder_hourly_statistics_generated event (the schedule at minute 12 is the fallback; whichever "
           "comes first, the other skips the hour).")
def hourly_statistics_generated_sensor(context: dg.SensorEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    state = context.resources.documents.store.get_stream_state()
    generated = state.get("statistics_generated_at")
    if not isinstance(generated, datetime):
        return dg.SkipReason("no recorder_hourly_statistics_generated event seen yet")
    hour = generated.astimezone(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    key = hour.strftime(PARTITION_KEY_FORMAT)
    if context.cursor == key:
        return dg.SkipReason(f"hour {key} already requested")
    context.update_cursor(key)
    if not hourly_partitions_def.has_partition_key(key) or hour_already_fetched(context.instance, hour):
        return dg.SkipReason(f"hour {key} already fetched or outside the partitions")
    first = (hour - timedelta(hours=1)).strftime(PARTITION_KEY_FORMAT)
    first = first if hourly_partitions_def.has_partition_key(first) else key
    return dg.RunRequest(run_key=f"generated-{key}", tags={RANGE_START_TAG: first, RANGE_END_TAG: key})
