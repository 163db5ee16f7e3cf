"""The stream sensor keeps exactly one stream run alive; the statistics sensor reacts to HA's event."""

import time
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from energy_pipeline.defs.live_events.jobs import (
    ha_event_stream_job,
    ha_event_stream_sensor,
    hourly_statistics_generated_sensor,
    restart_delay,
)
from energy_pipeline.defs.resources import DocumentsResource


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def evaluate(instance, sensor=ha_event_stream_sensor, **kwargs):
    return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, **kwargs))


def add_run(instance, status: dg.DagsterRunStatus) -> dg.DagsterRun:
    run = instance.create_run_for_job(job_def=ha_event_stream_job, run_config={})
    if status != dg.DagsterRunStatus.NOT_STARTED:
        instance.handle_run_event(run.run_id, dg.DagsterEvent(
            event_type_value={dg.DagsterRunStatus.STARTED: "PIPELINE_START",
                              dg.DagsterRunStatus.FAILURE: "PIPELINE_FAILURE",
                              dg.DagsterRunStatus.SUCCESS: "PIPELINE_SUCCESS",
                              dg.DagsterRunStatus.CANCELED: "PIPELINE_CANCELED"}[status],
            job_name=ha_event_stream_job.name))
    return instance.get_run_by_id(run.run_id)


def test_starts_a_run_when_none_is_running(instance):
    result = evaluate(instance)
    assert len(result.run_requests) == 1


def test_never_a_second_run_while_one_is_queued_or_running(instance):
    add_run(instance, dg.DagsterRunStatus.NOT_STARTED)
    result = evaluate(instance)
    assert not result.run_requests and "not_started" in result.skip_message
    instance.wipe()
    add_run(instance, dg.DagsterRunStatus.STARTED)
    result = evaluate(instance)
    assert not result.run_requests and "started" in result.skip_message


def test_restarts_after_a_failure_with_backoff(instance):
    assert [restart_delay(n) for n in range(6)] == [0, 30, 60, 120, 240, 480]
    assert restart_delay(20) == 900
    add_run(instance, dg.DagsterRunStatus.FAILURE)
    result = evaluate(instance)
    assert not result.run_requests and "restarting in" in result.skip_message and "1 in a row" in result.skip_message
    add_run(instance, dg.DagsterRunStatus.FAILURE)
    assert "2 in a row" in evaluate(instance).skip_message


def test_restarts_once_the_backoff_has_passed(instance, monkeypatch):
    add_run(instance, dg.DagsterRunStatus.FAILURE)
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 31)
    result = evaluate(instance)
    assert len(result.run_requests) == 1
    assert result.run_requests[0].tags["energy_pipeline/restart_after_failures"] == "1"


def test_a_finished_or_cancelled_run_is_replaced_at_once(instance):
    add_run(instance, dg.DagsterRunStatus.SUCCESS)
    assert len(evaluate(instance).run_requests) == 1


def test_statistics_sensor_requests_the_hour_ha_just_compiled(instance, tmp_path):
    documents = DocumentsResource(home=str(tmp_path))
    resources = {"documents": documents}
    result = evaluate(instance, hourly_statistics_generated_sensor, resources=resources)
    assert not result.run_requests and "no recorder_hourly_statistics_generated" in result.skip_message
    generated = datetime.now(UTC).replace(minute=0, second=5, microsecond=0)
    documents.store.update_stream_state({"statistics_generated_at": generated})
    result = evaluate(instance, hourly_statistics_generated_sensor, resources=resources)
    (request,) = result.run_requests
    hour = generated.replace(second=0) - timedelta(hours=1)
    assert request.tags["dagster/asset_partition_range_end"] == hour.strftime("%Y-%m-%d-%H:%M")
    assert request.tags["dagster/asset_partition_range_start"] == (hour - timedelta(hours=1)).strftime(
        "%Y-%m-%d-%H:%M")
    again = evaluate(instance, hourly_statistics_generated_sensor, resources=resources, cursor=result.cursor)
    assert not again.run_requests and "already requested" in again.skip_message
