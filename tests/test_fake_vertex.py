"""Proves tests/fake_vertex.py against the REAL aiplatform_v1 REST client."""

# No `from __future__ import annotations` here: kfp reads the component annotations.
import json
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import requests
import yaml
from fake_vertex import FakeVertex
from google.api_core import exceptions
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import aiplatform_v1
from kfp import compiler, dsl

PARENT = "projects/p/locations/us-central1"
TIMEOUT = 10.0
State = aiplatform_v1.PipelineState
TaskState = aiplatform_v1.PipelineTaskDetail.State

PROBE = (
    "import os, pathlib, sys\n"
    "pathlib.Path('cwd.txt').write_text(os.getcwd())\n"
    "print('attempt', os.environ.get('FAKE_ENV'), os.environ.get('STEP_ENV'), flush=True)\n"
    "sys.exit(int(sys.argv[1]))\n"
)
# Waits for a file named `go` in its own working dir, so tests control when it ends.
GATED = (
    "import os, time\n"
    "print('waiting', flush=True)\n"
    "while not os.path.exists('go'):\n"
    "    time.sleep(0.02)\n"
)


@dsl.container_component
def probe(code: int):
    return dsl.ContainerSpec(image="python:3.11", command=["python", "-c"], args=[PROBE, code])


@dsl.container_component
def gated():
    return dsl.ContainerSpec(image="python:3.11", command=["python3", "-c"], args=[GATED])


@dsl.container_component
def sleeper(seconds: int):
    return dsl.ContainerSpec(image="busybox", command=["sleep"], args=[seconds])


@dsl.pipeline(name="p-mixed")
def mixed_pipeline():
    probe(code=0).set_display_name("#0 ok")
    bad = probe(code=3).set_display_name("#1 fails").set_retry(num_retries=1)
    bad.set_env_variable("STEP_ENV", "from-step")


@dsl.pipeline(name="p-gated")
def gated_pipeline():
    gated().set_display_name("waiter").set_retry(num_retries=2)
    probe(code=0).set_display_name("quick")


@dsl.pipeline(name="p-sleep")
def sleep_pipeline():
    sleeper(seconds=30).set_display_name("sleep a")
    sleeper(seconds=30).set_display_name("sleep b")


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    out = tmp_path_factory.mktemp("specs")
    compiled = {}
    for name, func in {
        "mixed": mixed_pipeline,
        "gated": gated_pipeline,
        "sleep": sleep_pipeline,
    }.items():
        path = out / f"{name}.yaml"
        compiler.Compiler().compile(func, str(path))
        compiled[name] = yaml.safe_load(path.read_text())
    return compiled


@pytest.fixture
def make_fake(tmp_path: Path) -> Iterator[Callable[..., FakeVertex]]:
    started: list[FakeVertex] = []

    def make(max_parallel: int = 4) -> FakeVertex:
        fake = FakeVertex(
            scratch_root=tmp_path / f"vertex{len(started)}",
            env={"FAKE_ENV": "from-fake"},
            max_parallel=max_parallel,
        )
        started.append(fake.start())
        return fake

    yield make
    for fake in started:
        fake.stop()


@pytest.fixture
def fake(make_fake: Callable[..., FakeVertex]) -> FakeVertex:
    return make_fake()


def client_for(fake: FakeVertex) -> aiplatform_v1.PipelineServiceClient:
    return aiplatform_v1.PipelineServiceClient(
        credentials=AnonymousCredentials(),
        transport="rest",
        client_options=ClientOptions(api_endpoint=fake.endpoint),
    )


def submit(
    client: aiplatform_v1.PipelineServiceClient, spec: dict[str, Any], job_id: str, **extra: Any
) -> aiplatform_v1.PipelineJob:
    job = aiplatform_v1.PipelineJob(
        **{
            "display_name": f"display {job_id}",
            "pipeline_spec": spec,
            "runtime_config": {"gcs_output_directory": "gs://b/root"},
            **extra,
        }
    )
    return client.create_pipeline_job(parent=PARENT, pipeline_job=job, pipeline_job_id=job_id)


def tasks_by_name(job: aiplatform_v1.PipelineJob) -> dict[str, aiplatform_v1.PipelineTaskDetail]:
    return {t.task_name: t for t in job.job_detail.task_details}


def job_name(job_id: str) -> str:
    return f"{PARENT}/pipelineJobs/{job_id}"


def test_create_runs_tasks_and_reports_failures(
    fake: FakeVertex, specs: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    client = client_for(fake)
    created = submit(
        client,
        specs["mixed"],
        "mixed-1",
        labels={"team": "ml"},
        service_account="sa@p.iam.gserviceaccount.com",
        network="projects/1/global/networks/n",
        encryption_spec={"kms_key_name": "k"},
    )
    assert created.name == job_name("mixed-1")
    assert created.state in (State.PIPELINE_STATE_PENDING, State.PIPELINE_STATE_RUNNING)
    assert created.labels == {"team": "ml"}
    body = fake.jobs["mixed-1"].body
    assert body["serviceAccount"] == "sa@p.iam.gserviceaccount.com"
    assert body["network"] == "projects/1/global/networks/n"
    assert body["encryptionSpec"] == {"kmsKeyName": "k"}
    assert body["runtimeConfig"] == {"gcsOutputDirectory": "gs://b/root"}

    assert fake.wait_for_state("mixed-1", {"SUCCEEDED", "FAILED"}, TIMEOUT) == (
        "PIPELINE_STATE_FAILED"
    )
    job = client.get_pipeline_job(name=created.name)
    assert job.state == State.PIPELINE_STATE_FAILED
    assert "#1 fails" in job.error.message
    assert job.start_time and job.end_time
    tasks = tasks_by_name(job)
    assert set(tasks) == {"p-mixed", "#0 ok", "#1 fails"}
    assert len({t.task_id for t in tasks.values()}) == 3
    assert tasks["p-mixed"].state == TaskState.FAILED
    ok, bad = tasks["#0 ok"], tasks["#1 fails"]
    assert ok.state == TaskState.SUCCEEDED and ok.start_time and ok.end_time
    assert ok.parent_task_id == tasks["p-mixed"].task_id
    assert bad.state == TaskState.FAILED
    assert bad.error.code == 9 and "non-zero status of 3." in bad.error.message
    assert len(bad.executor_detail.container_detail.failed_main_jobs) == 1  # one retry

    # The retry ran again, with the fake's env and the container's env.
    assert fake.task_log("mixed-1", "#1 fails").splitlines() == ["attempt from-fake from-step"] * 2
    assert fake.task_log("mixed-1", "#0 ok") == "attempt from-fake None\n"
    workdir = fake.task_dir("mixed-1", "probe")
    assert (workdir / "cwd.txt").read_text() == str(workdir)
    assert not (tmp_path / "cwd.txt").exists()
    assert fake.requests["create"] == 1 and fake.requests["get"] == 1


def test_hold_shows_pending_then_running_then_succeeded(
    fake: FakeVertex, specs: dict[str, Any]
) -> None:
    client = client_for(fake)
    fake.hold_tasks()
    created = submit(client, specs["gated"], "gated-1")
    fake.wait_for_state("gated-1", {"RUNNING"}, TIMEOUT)
    job = client.get_pipeline_job(name=created.name)
    assert job.state == State.PIPELINE_STATE_RUNNING
    tasks = tasks_by_name(job)
    assert tasks["p-gated"].state == TaskState.RUNNING
    assert tasks["waiter"].state == TaskState.PENDING and not tasks["waiter"].start_time

    fake.release_tasks()
    fake.wait_for_task_state("gated-1", "waiter", {"RUNNING"}, TIMEOUT)
    fake.wait_for_task_state("gated-1", "quick", {"SUCCEEDED"}, TIMEOUT)
    waiter = tasks_by_name(client.get_pipeline_job(name=created.name))["waiter"]
    assert waiter.state == TaskState.RUNNING and waiter.start_time and not waiter.end_time

    (fake.task_dir("gated-1", "waiter") / "go").touch()
    fake.wait_for_state("gated-1", {"SUCCEEDED"}, TIMEOUT)
    job = client.get_pipeline_job(name=created.name)
    assert job.state == State.PIPELINE_STATE_SUCCEEDED and not job.error.message
    assert {t.state for t in job.job_detail.task_details} == {TaskState.SUCCEEDED}


def test_duplicate_invalid_and_unknown_ids(fake: FakeVertex, specs: dict[str, Any]) -> None:
    client = client_for(fake)
    fake.hold_tasks()
    submit(client, specs["gated"], "dup")
    with pytest.raises(exceptions.Conflict):
        submit(client, specs["gated"], "dup")
    with pytest.raises(exceptions.BadRequest):
        submit(client, specs["gated"], "Bad_Id")
    with pytest.raises(exceptions.NotFound):
        client.get_pipeline_job(name=job_name("nope"))
    with pytest.raises(exceptions.NotFound):
        client.get_pipeline_job(name="projects/other/locations/us-central1/pipelineJobs/dup")
    # Without a pipelineJobId, Vertex derives one from the display name.
    generated = client.create_pipeline_job(
        parent=PARENT,
        pipeline_job=aiplatform_v1.PipelineJob(
            pipeline_spec=specs["gated"], runtime_config={"gcs_output_directory": "gs://b/root"}
        ),
    )
    generated_id = generated.name.rsplit("/", 1)[1]
    assert generated_id.startswith("pipeline-") and set(fake.jobs) == {"dup", generated_id}
    assert fake.requests == {"create": 4, "get": 2}


def test_fail_next_injects_errors_without_side_effects(
    fake: FakeVertex, specs: dict[str, Any]
) -> None:
    client = client_for(fake)
    fake.hold_tasks()
    fake.fail_next("create", status=429)
    with pytest.raises(exceptions.TooManyRequests):
        submit(client, specs["gated"], "inj")
    assert "inj" not in fake.jobs
    created = submit(client, specs["gated"], "inj")

    fake.fail_next("get", count=2)
    for _ in range(2):
        with pytest.raises(exceptions.ServiceUnavailable):
            client.get_pipeline_job(name=created.name)
    assert client.get_pipeline_job(name=created.name).name == created.name

    fake.fail_next("cancel", status=500)
    with pytest.raises(exceptions.InternalServerError):
        client.cancel_pipeline_job(name=created.name)
    assert fake.jobs["inj"].state == "PIPELINE_STATE_RUNNING"
    assert fake.requests == {"create": 2, "get": 3, "cancel": 1}


def test_fail_create_after_commit(fake: FakeVertex, specs: dict[str, Any]) -> None:
    client = client_for(fake)
    fake.fail_create_after_commit()
    with pytest.raises(exceptions.ServiceUnavailable):
        submit(client, specs["mixed"], "ambiguous")
    assert "ambiguous" in fake.jobs
    with pytest.raises(exceptions.Conflict):
        submit(client, specs["mixed"], "ambiguous")
    fake.wait_for_state("ambiguous", {"FAILED"}, TIMEOUT)
    assert client.get_pipeline_job(name=job_name("ambiguous")).state == State.PIPELINE_STATE_FAILED


def assert_killed(fake: FakeVertex, client: Any, job_id: str) -> None:
    assert fake.wait_for_state(job_id, {"SUCCEEDED", "FAILED"}, TIMEOUT) == "PIPELINE_STATE_FAILED"
    tasks = tasks_by_name(client.get_pipeline_job(name=job_name(job_id)))
    assert tasks["waiter"].state == TaskState.FAILED
    assert "non-zero status of 137 (killed)" in tasks["waiter"].error.message
    assert tasks["quick"].state == TaskState.SUCCEEDED
    # The retry policy (2) is not applied to a killed task; it may die before printing.
    assert not tasks["waiter"].executor_detail.container_detail.failed_main_jobs
    assert fake.task_log(job_id, "waiter") in ("", "waiting\n")


def test_kill_task_before_and_while_running(fake: FakeVertex, specs: dict[str, Any]) -> None:
    client = client_for(fake)
    fake.hold_tasks()
    submit(client, specs["gated"], "kill-early")
    fake.kill_task("kill-early", "wait")
    fake.release_tasks()
    assert_killed(fake, client, "kill-early")

    submit(client, specs["gated"], "kill-late")
    fake.wait_for_task_state("kill-late", "waiter", {"RUNNING"}, TIMEOUT)
    fake.kill_task("kill-late", "gated")  # matches the DAG key
    assert_killed(fake, client, "kill-late")


def test_cancel_via_client_kills_running_and_skips_pending(
    make_fake: Callable[..., FakeVertex], specs: dict[str, Any]
) -> None:
    fake = make_fake(max_parallel=1)
    client = client_for(fake)
    created = submit(client, specs["sleep"], "sleepy")
    fake.wait_for_task_state("sleepy", "sleep a", {"RUNNING"}, TIMEOUT)
    assert client.get_pipeline_job(name=created.name).state == State.PIPELINE_STATE_RUNNING
    client.cancel_pipeline_job(name=created.name)
    # Only a killed `sleep 30` lets the job end this fast.
    fake.wait_for_state("sleepy", {"CANCELLED"}, 5)
    job = client.get_pipeline_job(name=created.name)
    assert job.state == State.PIPELINE_STATE_CANCELLED
    tasks = tasks_by_name(job)
    assert tasks["sleep a"].state == TaskState.CANCELLED and tasks["sleep a"].start_time
    assert tasks["sleep b"].state == TaskState.CANCELLED and not tasks["sleep b"].start_time
    with pytest.raises(exceptions.BadRequest, match="cannot be canceled"):
        client.cancel_pipeline_job(name=created.name)
    assert fake.requests["cancel"] == 2


def test_external_cancel_and_stop(
    make_fake: Callable[..., FakeVertex], specs: dict[str, Any]
) -> None:
    fake = make_fake()
    client = client_for(fake)
    fake.hold_tasks()
    submit(client, specs["mixed"], "held")
    assert fake.cancel("held") is True
    assert fake.wait_for_state("held", {"CANCELLED"}, TIMEOUT) == "PIPELINE_STATE_CANCELLED"
    assert fake.cancel("held") is False
    assert not fake.task_dir("held", "probe").exists()  # never started

    fake.release_tasks()
    submit(client, specs["sleep"], "left-running")
    fake.wait_for_task_state("left-running", "sleep b", {"RUNNING"}, TIMEOUT)
    fake.stop()
    assert {t.state for t in fake.jobs["left-running"].tasks.values()} == {"CANCELLED"}


def http(
    fake: FakeVertex, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    request = urllib.request.Request(fake.endpoint + path, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_raw_rest_enum_encoding_and_unknown_routes(fake: FakeVertex, specs: dict[str, Any]) -> None:
    fake.hold_tasks()
    submit(client_for(fake), specs["gated"], "raw")
    path = f"/v1/{job_name('raw')}"
    status, job = http(fake, "GET", path)
    assert status == 200 and job["state"] == "PIPELINE_STATE_RUNNING"
    assert job["jobDetail"]["taskDetails"][1]["state"] == "PENDING"
    assert job["createTime"].endswith("Z") and isinstance(
        job["jobDetail"]["taskDetails"][0]["taskId"], str
    )
    _, job = http(fake, "GET", path + "?%24alt=json%3Benum-encoding%3Dint")
    assert job["state"] == 3 and job["jobDetail"]["taskDetails"][1]["state"] == 1

    status, error = http(fake, "GET", "/v1/projects/p/locations/l/models")
    assert status == 404 and error["error"]["status"] == "NOT_FOUND"
    status, _ = http(fake, "DELETE", path)
    assert status == 404
    fake.fail_next("get", status=503)
    status, error = http(fake, "GET", path)
    assert (status, error) == (
        503,
        {"error": {"code": 503, "message": "injected", "status": "UNAVAILABLE"}},
    )
    assert fake.requests == {"create": 1, "get": 3, "other": 2}


def test_a_field_mask_answers_only_the_fields_it_names(
    fake: FakeVertex, specs: dict[str, Any]
) -> None:
    fake.hold_tasks()
    client = client_for(fake)
    submit(client, specs["gated"], "masked")
    name = job_name("masked")
    full = client.get_pipeline_job(name=name)
    mask = "state,jobDetail.taskDetails(taskName,state)"

    job = client.get_pipeline_job(name=name, metadata=[("x-goog-fieldmask", mask)])

    assert fake.field_masks["get"] == [None, mask]
    assert job.state == full.state == State.PIPELINE_STATE_RUNNING
    assert not (job.name or job.pipeline_spec or job.runtime_config or job.create_time)
    named = [(task.task_name, task.state) for task in job.job_detail.task_details]
    assert named == [(task.task_name, task.state) for task in full.job_detail.task_details]
    assert not any(task.task_id or task.create_time for task in job.job_detail.task_details)
    # The same mask spelled with dots, slashes and parentheses; a whole field and "*".
    path = f"/v1/{name}"
    answers = [
        http(fake, "GET", path, {"X-Goog-FieldMask": spelled})[1]
        for spelled in (
            "jobDetail(taskDetails(taskName,state)),state",
            "jobDetail/taskDetails.taskName,state,jobDetail.taskDetails.state",
        )
    ]
    details = [{"taskName": task, "state": TaskState(state).name} for task, state in named]
    expected = {"state": "PIPELINE_STATE_RUNNING", "jobDetail": {"taskDetails": details}}
    assert answers[0] == answers[1] == expected
    _, whole = http(fake, "GET", path, {"X-Goog-FieldMask": "jobDetail,name"})
    assert (
        set(whole) == {"jobDetail", "name"} and "createTime" in whole["jobDetail"]["taskDetails"][0]
    )
    _, everything = http(fake, "GET", path, {"X-Goog-FieldMask": "*"})
    assert everything.keys() == http(fake, "GET", path)[1].keys() > {"pipelineSpec"}
    with pytest.raises(exceptions.BadRequest, match="Invalid field mask"):
        client.get_pipeline_job(name=name, metadata=[("x-goog-fieldmask", "state,jobDetail(")])


def test_stall_after_create_answers_the_create_then_nothing(
    fake: FakeVertex, specs: dict[str, Any]
) -> None:
    fake.stall_after_create()
    client = client_for(fake)
    created = submit(client, specs["sleep"], "stalled")
    assert created.name == job_name("stalled")
    with pytest.raises(requests.exceptions.Timeout):
        client.get_pipeline_job(name=created.name, retry=None, timeout=1.0)
    with pytest.raises(requests.exceptions.Timeout):
        client.cancel_pipeline_job(name=created.name, retry=None, timeout=1.0)
    assert fake.requests["get"] == 1 and fake.requests["cancel"] == 1
    assert not fake.jobs["stalled"].cancel_requested


def test_delay_create_lands_after_the_client_gave_up(
    fake: FakeVertex, specs: dict[str, Any]
) -> None:
    fake.delay_create(2.0)
    client = client_for(fake)
    with pytest.raises(requests.exceptions.Timeout):
        client.create_pipeline_job(
            parent=PARENT,
            pipeline_job=aiplatform_v1.PipelineJob(
                display_name="late",
                pipeline_spec=specs["sleep"],
                runtime_config={"gcs_output_directory": "gs://b/root"},
            ),
            pipeline_job_id="late",
            retry=None,
            timeout=0.5,
        )
    assert fake.jobs == {}
    assert fake.wait_for_state("late", {"RUNNING"}, timeout=10) == "PIPELINE_STATE_RUNNING"


@pytest.mark.parametrize(
    "extra, refused",
    [
        ({"labels": {"1team": "ml"}}, "Invalid label '1team'"),
        ({"labels": {"team": "x" * 64}}, "Invalid label 'team'"),
        ({"labels": {"team": "ML"}}, "must be lowercase"),
        ({"labels": {f"k{i}": "v" for i in range(65)}}, "At most 64 labels"),
        ({"display_name": "d" * 129}, "display_name must be at most 128"),
        ({"runtime_config": {}}, "gcs_output_directory (the pipeline root) is required"),
    ],
)
def test_a_create_request_vertex_would_refuse_is_refused(
    fake: FakeVertex, specs: dict[str, Any], extra: dict[str, Any], refused: str
) -> None:
    job = aiplatform_v1.PipelineJob(
        display_name="d",
        pipeline_spec=specs["mixed"],
        runtime_config={"gcs_output_directory": "gs://b/r"},
    )
    for field, value in extra.items():
        setattr(job, field, value)
    with pytest.raises(exceptions.BadRequest, match=re.escape(refused)):
        client_for(fake).create_pipeline_job(parent=PARENT, pipeline_job=job, pipeline_job_id="x")
    assert fake.jobs == {}


def test_a_create_request_that_is_not_a_pipeline_job_is_refused(fake: FakeVertex) -> None:
    body = {"displayName": "d", "pipelineSpec": {}, "runtimeConfig": {}, "retries": 3}
    request = urllib.request.Request(
        f"{fake.endpoint}/v1/{PARENT}/pipelineJobs?pipelineJobId=x",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=TIMEOUT)
    assert refused.value.code == 400 and "retries" in refused.value.read().decode()
    assert fake.jobs == {}


@pytest.mark.parametrize("policy", ["FAIL_SLOW", "FAIL_FAST"])
def test_the_failure_policy_decides_whether_tasks_start_after_a_failure(
    make_fake: Callable[..., FakeVertex], specs: dict[str, Any], policy: str
) -> None:
    fake = make_fake(max_parallel=1)  # one at a time: "#1 fails" ends before "#0 ok" starts
    failure_policy = getattr(
        aiplatform_v1.PipelineFailurePolicy, f"PIPELINE_FAILURE_POLICY_{policy}"
    )
    spec = {**specs["mixed"]}
    tasks = spec["root"]["dag"]["tasks"]
    # Failing first: natural key order runs probe before probe-2, so swap their inputs.
    first, second = sorted(tasks)
    tasks = {first: tasks[second], second: tasks[first]}
    spec["root"] = {**spec["root"], "dag": {**spec["root"]["dag"], "tasks": tasks}}
    submit(
        client_for(fake),
        spec,
        "policy",
        runtime_config={"gcs_output_directory": "gs://b/root", "failure_policy": failure_policy},
    )
    fake.wait_for_state("policy", {"SUCCEEDED", "FAILED", "CANCELLED"}, TIMEOUT * 3)
    states = {t.name: t.state for t in fake.jobs["policy"].tasks.values()}
    expected_ok = "SUCCEEDED" if policy == "FAIL_SLOW" else "CANCELLED"
    assert states == {"#1 fails": "FAILED", "#0 ok": expected_ok}
