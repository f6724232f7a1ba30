"""vertex_pipeline against the fake Vertex (real aiplatform REST client) and the GCS emulator."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path
from typing import Callable, List, Tuple

import pytest
from apputil import job_state, read_json, run_app, start_app, wait_until
from fake_vertex import FakeVertex
from google.cloud import storage
from vertexutil import IMAGE, LOCATION, PROJECT, only_job, sweep_args

from hydra_plugins.hydra_vertex_pipeline_launcher._backends._vertex import STATUS_FIELDS


def _run_with_held_tasks(
    fake: FakeVertex,
    bucket: str,
    sweep: Path,
    overrides: List[str],
    before_tasks_start: Callable[[str], None],
) -> Tuple[int, str]:
    """Sweeps flaky.py; once its run exists and before any task starts, acts on it."""
    fake.hold_tasks()
    launcher = start_app("flaky.py", sweep_args(fake, bucket, sweep, *overrides), sweep.parent)
    try:
        before_tasks_start(only_job(fake))
        fake.release_tasks()
        output, _ = launcher.communicate(timeout=120)
    finally:
        launcher.kill()
    return launcher.returncode, output


def _chatty(
    fake: FakeVertex, bucket: str, tmp_path: Path, *overrides: str
) -> Tuple[subprocess.Popen[str], Path, Path]:
    """chatty.py in the background; its jobs wait for the returned go-file."""
    sweep, go = tmp_path / "multirun", tmp_path / "go"
    args = sweep_args(fake, bucket, sweep, *overrides, f"+go={go}")
    return start_app("chatty.py", args, tmp_path), sweep, go


def test_a_sweep_comes_back_as_on_the_local_backend(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    sweep = tmp_path / "multirun"
    args = sweep_args(
        fake_vertex,
        gcs_bucket,
        sweep,
        "+x=1,3",
        "hydra.launcher.service_account=runner@test-proj.iam.gserviceaccount.com",
        "hydra.launcher.network=projects/1/global/networks/vpc",
        "hydra.launcher.encryption_spec_key_name=projects/p/locations/l/keyRings/r/cryptoKeys/k",
        "+hydra.launcher.labels.Team=ML Research",
    )
    proc = run_app("flaky.py", args, tmp_path)
    assert proc.returncode == 0, proc.stderr
    # Every status read named its fields, and got only those (the fake cuts its answers as
    # Google's front end does), as binary protobuf: what the launcher collects below came
    # through that cut and that format.
    assert set(fake_vertex.field_masks["get"]) == {STATUS_FIELDS}
    assert set(fake_vertex.alts["get"]) == {"proto"}

    for num, x in ((0, 1), (1, 3)):
        job_dir = sweep / str(num)
        assert (job_dir / "artifact.txt").read_text() == f"x={x}\n"
        assert f"job with x={x} starts" in (job_dir / "flaky.log").read_text()
        assert (job_dir / ".hydra" / "overrides.yaml").exists()
        assert read_json(job_dir / "vertex_status.json")["state"] == "SUCCEEDED"

    (job_id,) = fake_vertex.jobs
    assert re.fullmatch(r"flaky-\d{8}-\d{6}-[0-9a-f]{6}", job_id)
    body = fake_vertex.jobs[job_id].body
    assert body["labels"] == {
        "hydra_job_name": "flaky",
        "launcher": "hydra-vertex-pipeline",
        "team": "ml-research",
    }
    assert body["serviceAccount"] == "runner@test-proj.iam.gserviceaccount.com"
    assert body["network"] == "projects/1/global/networks/vpc"
    assert body["encryptionSpec"]["kmsKeyName"].endswith("cryptoKeys/k")
    root = f"gs://{gcs_bucket}/hydra/{job_id}"
    assert body["runtimeConfig"]["gcsOutputDirectory"] == f"{root}/pipeline_root"
    executors = body["pipelineSpec"]["deploymentSpec"]["executors"].values()
    assert {e["container"]["image"] for e in executors} == {IMAGE}

    run = read_json(sweep / "vertex_pipeline" / job_id / "run.json")
    assert run["state"] == "SUCCEEDED"
    assert run["resource_name"] == f"projects/{PROJECT}/locations/{LOCATION}/pipelineJobs/{job_id}"
    assert run["console_url"] == (
        f"https://console.cloud.google.com/vertex-ai/locations/{LOCATION}/pipelines/runs/"
        f"{job_id}?project={PROJECT}"
    )
    assert run["console_url"] in proc.stdout
    staged = storage.Client().bucket(gcs_bucket).blob(f"hydra/{job_id}/jobs/1/config.yaml")
    assert staged.download_as_text() == "x: 3\n"


def test_one_status_read_per_poll_for_the_whole_run(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    sweep = tmp_path / "multirun"
    jobs = ",".join(str(x) for x in range(50))
    proc = run_app(
        "flaky.py",
        sweep_args(fake_vertex, gcs_bucket, sweep, f"+x={jobs}"),
        tmp_path,
        timeout=600,
    )
    assert proc.returncode != 0  # x=2 raises; the 49 others finish
    (job_id,) = fake_vertex.jobs
    reads = read_json(sweep / "vertex_pipeline" / job_id / "run.json")["status_reads"]
    assert reads >= 2
    assert fake_vertex.requests["get"] == reads
    assert fake_vertex.requests["create"] == 1
    states = [read_json(sweep / str(n) / "vertex_status.json")["state"] for n in range(50)]
    assert states.count("SUCCEEDED") == 49 and states[2] == "FAILED"


def test_a_refused_binary_read_then_a_refused_field_mask_fall_back_to_whole_json_reads(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    fake_vertex.fail_next("get", count=2, status=400)
    sweep = tmp_path / "multirun"
    proc = run_app("flaky.py", sweep_args(fake_vertex, gcs_bucket, sweep, "+x=1,3"), tmp_path)
    assert proc.returncode == 0, proc.stderr
    said = proc.stderr + proc.stdout
    assert "Vertex did not answer a status read as protobuf (400 injected)" in said
    assert "Vertex refused the field mask of a status read" in said
    alts, masks = fake_vertex.alts["get"], fake_vertex.field_masks["get"]
    assert alts[0] == "proto" and len(alts) > 2 and "proto" not in alts[1:]
    assert masks[:2] == [STATUS_FIELDS, STATUS_FIELDS] and set(masks[2:]) == {None}
    assert [(sweep / str(n) / "artifact.txt").read_text() for n in (0, 1)] == ["x=1\n", "x=3\n"]


def test_a_front_end_that_answers_json_to_a_binary_read_is_read_as_json(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    fake_vertex.binary_answers = False
    fake_vertex.fail_next("get", status=503)  # an error as JSON: retried
    sweep = tmp_path / "multirun"
    proc = run_app("flaky.py", sweep_args(fake_vertex, gcs_bucket, sweep, "+x=1,3"), tmp_path)
    assert proc.returncode == 0, proc.stderr
    said = proc.stderr + proc.stdout
    assert "its answer was application/json, not application/x-protobuf" in said
    alts = fake_vertex.alts["get"]
    assert alts[:2] == ["proto", "proto"] and len(alts) > 2 and "proto" not in alts[2:]
    assert set(fake_vertex.field_masks["get"]) == {STATUS_FIELDS}
    assert [(sweep / str(n) / "artifact.txt").read_text() for n in (0, 1)] == ["x=1\n", "x=3\n"]


def test_ctrl_c_cancels_the_run(fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path) -> None:
    sweep = tmp_path / "multirun"
    launcher = start_app(
        "rendezvous.py",
        sweep_args(
            fake_vertex, gcs_bucket, sweep, "+x=0,1", f"+board={tmp_path / 'board'}", "+sleep=120"
        ),
        tmp_path,
    )
    try:
        job_id = only_job(fake_vertex)
        for task_key in fake_vertex.jobs[job_id].tasks:
            fake_vertex.wait_for_task_state(job_id, task_key, {"RUNNING"}, timeout=60)
        # The launcher has seen them run (status files are written PENDING before the create).
        wait_until(lambda: all(job_state(sweep / n) == "RUNNING" for n in ("0", "1")))
        launcher.send_signal(signal.SIGINT)
        output, _ = launcher.communicate(timeout=60)
    finally:
        launcher.kill()
    assert launcher.returncode != 0
    assert fake_vertex.requests["cancel"] == 1
    assert (
        fake_vertex.wait_for_state(job_id, {"CANCELLED"}, timeout=30) == "PIPELINE_STATE_CANCELLED"
    )
    for num in ("0", "1"):
        assert read_json(sweep / num / "vertex_status.json")["state"] == "CANCELLED"
    assert read_json(sweep / "vertex_pipeline" / job_id / "run.json")["state"] == "CANCELLED"
    assert "cancelling" in output.lower()


def test_a_killed_task_fails_its_job_only(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    sweep = tmp_path / "multirun"
    returncode, output = _run_with_held_tasks(
        fake_vertex,
        gcs_bucket,
        sweep,
        ["+x=1,3,4"],
        before_tasks_start=lambda job_id: fake_vertex.kill_task(job_id, "#1 "),
    )
    (job_id,) = fake_vertex.jobs
    assert returncode != 0
    assert "killed" in output and f"pipelines/runs/{job_id}" in output
    status = read_json(sweep / "1" / "vertex_status.json")
    assert status["state"] == "FAILED" and "killed" in status["error"]
    run = read_json(sweep / "vertex_pipeline" / job_id / "run.json")
    assert run["console_url"] in status["error"], "the job's own error says where to look"
    assert "The DAG failed because some tasks failed" in run["error"], "the run's, from Vertex"
    for num, x in ((0, 1), (2, 4)):
        assert (sweep / str(num) / "artifact.txt").read_text() == f"x={x}\n"
        assert read_json(sweep / str(num) / "vertex_status.json")["state"] == "SUCCEEDED"


def test_transient_errors_are_retried_and_the_run_is_created_once(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    fake_vertex.fail_create_after_commit()
    fake_vertex.fail_next("get", count=2, status=503)
    sweep = tmp_path / "multirun"
    proc = run_app(
        "flaky.py",
        sweep_args(fake_vertex, gcs_bucket, sweep, "+x=1"),
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(fake_vertex.jobs) == 1
    assert fake_vertex.requests["create"] == 1, "an ambiguous create is looked up, not repeated"
    assert read_json(sweep / "0" / "vertex_status.json")["state"] == "SUCCEEDED"


def test_an_object_that_would_escape_the_job_dir_is_refused(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    sweep = tmp_path / "multirun"

    def plant_an_escaping_object(job_id: str) -> None:
        bucket = storage.Client().bucket(gcs_bucket)
        bucket.blob(f"hydra/{job_id}/jobs/0/output/../../x").upload_from_string(b"evil")

    returncode, output = _run_with_held_tasks(
        fake_vertex, gcs_bucket, sweep, ["+x=1"], before_tasks_start=plant_an_escaping_object
    )

    assert returncode == 0, output
    assert [p for p in tmp_path.rglob("x") if p.is_file()] == []
    assert (sweep / "0" / "artifact.txt").read_text() == "x=1\n"
    status = read_json(sweep / "0" / "vertex_status.json")
    assert status["state"] == "SUCCEEDED" and "refused stored object '../../x'" in status["error"]


def test_working_dirs_map_into_the_container(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    args = sweep_args(fake_vertex, gcs_bucket, Path("cli_dir"), "+x=7", "hydra.job.chdir=True")
    proc = run_app("chatty.py", args, tmp_path)
    assert proc.returncode == 0, proc.stderr

    (job_id,) = fake_vertex.jobs
    (task_key,) = fake_vertex.jobs[job_id].tasks
    step_dir = fake_vertex.task_dir(job_id, task_key)
    where = read_json(tmp_path / "cli_dir" / "0" / "where.json")
    assert Path(where["original_cwd"]).resolve() == step_dir.resolve()
    assert Path(where["cwd"]).resolve() == (step_dir / "cli_dir" / "0").resolve()
    assert where["output_dir"] == where["cwd"]


def test_a_running_jobs_log_streams_into_its_dir(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    launcher, sweep, go = _chatty(fake_vertex, gcs_bucket, tmp_path, "+x=5")
    local_log = sweep / "0" / "chatty.log"
    try:
        wait_until(lambda: local_log.exists() and "step 1" in local_log.read_text())
        assert "step 2" not in local_log.read_text()
        go.touch()
        output, _ = launcher.communicate(timeout=120)
    finally:
        launcher.kill()
    assert launcher.returncode == 0, output
    assert "step 2 of job x=5" in local_log.read_text()


SETTING = "hydra.launcher.staging_root="


@pytest.mark.parametrize(
    "staging_root, said",
    [
        ("gs://no-such-bucket/hydra", [f"{SETTING}gs://no-such-bucket/hydra", "does not exist"]),
        ("/tmp/local-folder", [f"{SETTING}'/tmp/local-folder'"]),
        ("s3://bucket/x", [f"{SETTING}'s3://bucket/x'"]),
    ],
)
def test_a_staging_root_vertex_cannot_use_stops_the_launch_before_anything_is_submitted(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path, staging_root: str, said: List[str]
) -> None:
    root = f"hydra.launcher.staging_root={staging_root}"
    args = [*sweep_args(fake_vertex, gcs_bucket, tmp_path / "m", "+x=1"), root]
    proc = run_app("flaky.py", args, tmp_path)
    assert proc.returncode != 0
    for words in said:
        assert words in proc.stderr
    assert fake_vertex.requests["create"] == 0


def test_a_run_cancelled_in_the_console_fails_its_unfinished_jobs(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    launcher, sweep, go = _chatty(fake_vertex, gcs_bucket, tmp_path, "+x=1,2")
    try:
        job_id = only_job(fake_vertex)
        for task_key in fake_vertex.jobs[job_id].tasks:
            fake_vertex.wait_for_task_state(job_id, task_key, {"RUNNING"}, timeout=60)
        fake_vertex.cancel(job_id)
        output, _ = launcher.communicate(timeout=120)
    finally:
        launcher.kill()
    assert launcher.returncode != 0
    assert "the run ended CANCELLED" in output or "ended CANCELLED without a result" in output
    assert f"pipelines/runs/{job_id}" in output
    for num in ("0", "1"):
        assert read_json(sweep / num / "vertex_status.json")["state"] in {"FAILED", "CANCELLED"}
    assert read_json(sweep / "vertex_pipeline" / job_id / "run.json")["state"] == "CANCELLED"


def test_ctrl_c_can_leave_the_run_going(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    launcher, sweep, go = _chatty(
        fake_vertex, gcs_bucket, tmp_path, "+x=1", "hydra.launcher.cancel_on_interrupt=false"
    )
    try:
        job_id = only_job(fake_vertex)
        (task_key,) = fake_vertex.jobs[job_id].tasks
        fake_vertex.wait_for_task_state(job_id, task_key, {"RUNNING"}, timeout=60)
        wait_until(lambda: job_state(sweep / "0") == "RUNNING")
        launcher.send_signal(signal.SIGINT)
        output, _ = launcher.communicate(timeout=60)
    finally:
        launcher.kill()
    assert launcher.returncode != 0
    assert fake_vertex.requests["cancel"] == 0
    assert f"pipelines/runs/{job_id}" in output and "goes on" in output
    go.touch()
    assert (
        fake_vertex.wait_for_state(job_id, {"SUCCEEDED"}, timeout=60) == "PIPELINE_STATE_SUCCEEDED"
    )


def test_a_refused_create_names_what_to_grant(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    fake_vertex.fail_next("create", status=403)
    proc = run_app(
        "flaky.py", sweep_args(fake_vertex, gcs_bucket, tmp_path / "m", "+x=1"), tmp_path
    )
    assert proc.returncode != 0
    assert "Vertex denied creating a pipeline run in projects/test-proj" in proc.stderr
    assert "roles/aiplatform.user" in proc.stderr
    assert fake_vertex.jobs == {}
