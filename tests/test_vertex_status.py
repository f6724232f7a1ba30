"""A PipelineJob as Vertex's REST API returns it -> each job's state, time stamps and error."""

from __future__ import annotations

import json

from google.cloud import aiplatform_v1

from hydra_plugins.hydra_vertex_pipeline_launcher._backends._base import State, TaskStatus
from hydra_plugins.hydra_vertex_pipeline_launcher._backends._vertex import (
    NOT_TRIGGERED_ERROR,
    SeenTasks,
    run_status,
)

STARTED = "2026-11-26T10:00:02.123456Z"
ENDED = "2026-11-26T10:01:02Z"


def _job(run_state: str, *tasks: dict) -> bytes:
    """As a status read gets it: binary protobuf."""
    root = {"taskId": "1", "taskName": "pipeline-root", "state": "RUNNING"}
    body = {"state": run_state, "jobDetail": {"taskDetails": [root, *tasks]}}
    job = aiplatform_v1.PipelineJob.from_json(json.dumps(body))
    return aiplatform_v1.PipelineJob.serialize(job)


def _task(name: str, state: str, **fields: object) -> dict:
    return {"taskId": str(abs(hash(name)) % 10**6), "taskName": name, "state": state, **fields}


def test_each_known_task_gets_its_state_times_and_error() -> None:
    job = _job(
        "PIPELINE_STATE_RUNNING",
        _task("#0 x=1", "SUCCEEDED", startTime=STARTED, endTime=ENDED),
        _task("#1 x=2", "FAILED", startTime=STARTED, endTime=ENDED, error={"message": "boom"}),
        _task("#2 x=3", "SKIPPED"),
        _task("#3 x=4", "NOT_TRIGGERED"),
        _task("#4 x=5", "CANCEL_PENDING", startTime=STARTED),
        _task("#5 x=6", "PENDING"),
    )
    keys = {f"#{n} x={n + 1}": f"task-{n}" for n in range(6)}

    status = run_status(job, keys)

    assert status.state is State.RUNNING and status.error is None
    assert set(status.tasks) == set(keys.values()), "the root task is no job"
    done = status.tasks["task-0"]
    assert (done.state, done.started, done.ended, done.error) == (
        State.SUCCEEDED,
        "2026-11-26T10:00:02+00:00",
        "2026-11-26T10:01:02+00:00",
        None,
    )
    assert (status.tasks["task-1"].state, status.tasks["task-1"].error) == (State.FAILED, "boom")
    assert status.tasks["task-2"].error == "Vertex reports the task SKIPPED"
    assert status.tasks["task-3"].error == NOT_TRIGGERED_ERROR
    assert status.tasks["task-4"].state is State.RUNNING
    assert status.tasks["task-5"] == TaskStatus(State.PENDING)


def test_in_a_cancelled_run_an_unstarted_task_is_cancelled() -> None:
    job = _job("PIPELINE_STATE_CANCELLED", _task("#0 x=1", "NOT_TRIGGERED", endTime=ENDED))
    task = run_status(job, {"#0 x=1": "task-0"}).tasks["task-0"]
    assert (task.state, task.error, task.ended) == (
        State.CANCELLED,
        None,
        "2026-11-26T10:01:02+00:00",
    )


def test_a_paused_run_says_what_to_do() -> None:
    status = run_status(_job("PIPELINE_STATE_PAUSED"), {})
    assert status.state is State.FAILED and "resume or cancel it" in (status.error or "")


def test_a_poll_reading_what_it_read_before_gives_what_a_first_read_gives() -> None:
    # Reads kept from poll to poll convert again only what changed; whatever changed must show.
    keys = {f"#{n} x={n}": f"task-{n}" for n in range(4)}
    polls = [
        _job(
            "PIPELINE_STATE_RUNNING",
            _task("#0 x=0", "RUNNING", startTime=STARTED),
            _task("#1 x=1", "PENDING"),
            _task("#2 x=2", "NOT_TRIGGERED"),
            _task("#3 x=3", "RUNNING", startTime=STARTED),
        ),
        _job(
            "PIPELINE_STATE_RUNNING",
            _task("#0 x=0", "SUCCEEDED", startTime=STARTED, endTime=ENDED),
            _task("#1 x=1", "RUNNING", startTime=STARTED),
            _task("#2 x=2", "NOT_TRIGGERED"),
            _task("#3 x=3", "RUNNING", startTime=STARTED, error={"message": "retrying"}),
        ),
        _job(
            "PIPELINE_STATE_CANCELLED",
            _task("#0 x=0", "SUCCEEDED", startTime=STARTED, endTime=ENDED),
            _task("#1 x=1", "CANCELLED", startTime=STARTED, endTime=ENDED),
            _task("#2 x=2", "NOT_TRIGGERED"),
            _task("#3 x=3", "FAILED", startTime=STARTED, endTime=ENDED, error={"message": "x"}),
        ),
    ]
    seen = SeenTasks()
    for job in polls:
        assert run_status(job, keys, seen) == run_status(job, keys)
    assert run_status(polls[1], keys).tasks["task-3"].error == "retrying"
    cancelled = run_status(polls[2], keys, seen).tasks["task-2"]
    assert cancelled.state is State.CANCELLED


def test_a_run_state_newer_than_the_client_reads_as_pending() -> None:
    # Vertex may add run states before aiplatform's client knows them: a poll must go on.
    answer = aiplatform_v1.PipelineJob.pb()(state=99).SerializeToString()
    assert run_status(answer, {}).state is State.PENDING
