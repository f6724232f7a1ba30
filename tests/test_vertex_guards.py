"""What keeps a Vertex run honest with the user's bill, each checked through its effect on the
fake Vertex: signals cancel, a watch that cannot read gives up and says where the run is, labels
and the failure policy reach Vertex as it takes them."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Iterator

import pytest
from apputil import read_json, run_app, start_app, wait_until
from fake_vertex import FakeVertex
from vertexutil import only_job, sweep_args


@pytest.fixture()
def one_at_a_time(
    gcs_bucket: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FakeVertex]:
    """A fake Vertex that runs one task at a time, in job order."""
    fake = FakeVertex(scratch_root=tmp_path_factory.mktemp("vertex"), max_parallel=1).start()
    yield fake
    fake.stop()


def _hold_running(fake: FakeVertex, gcs_bucket: str, tmp_path: Path, *settings: str) -> tuple:
    """chatty.py's two jobs, waiting on a go-file that never comes, watched by a launcher."""
    sweep = tmp_path / "multirun"
    args = sweep_args(fake, gcs_bucket, sweep, "+x=1,2", f"+go={tmp_path / 'go'}", *settings)
    launcher = start_app("chatty.py", args, tmp_path)
    job_id = only_job(fake)
    for task_key in fake.jobs[job_id].tasks:
        fake.wait_for_task_state(job_id, task_key, {"RUNNING"}, timeout=60)
    wait_until(lambda: read_json(sweep / "0" / "vertex_status.json")["state"] == "RUNNING")
    return launcher, job_id, sweep


def test_sighup_cancels_the_run_like_ctrl_c(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    launcher, job_id, sweep = _hold_running(fake_vertex, gcs_bucket, tmp_path)
    try:
        launcher.send_signal(signal.SIGHUP)
        output, _ = launcher.communicate(timeout=60)
    finally:
        launcher.kill()
    assert launcher.returncode == 128 + signal.SIGHUP and "Traceback" not in output
    assert fake_vertex.wait_for_state(job_id, {"CANCELLED"}, 30) == "PIPELINE_STATE_CANCELLED"
    assert fake_vertex.requests["cancel"] == 1
    assert read_json(sweep / "1" / "vertex_status.json")["state"] == "CANCELLED"


def test_a_second_signal_does_not_stop_the_cancel_under_way(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    # The first cancel is refused (503): the launcher retries it, and the second signal lands
    # while it does; the run must still be cancelled.
    launcher, job_id, sweep = _hold_running(fake_vertex, gcs_bucket, tmp_path)
    fake_vertex.fail_next("cancel", count=1, status=503)
    try:
        launcher.send_signal(signal.SIGINT)
        try:
            wait_until(lambda: fake_vertex.requests["cancel"] >= 1, timeout=30)
        except AssertionError:
            launcher.kill()
            raise AssertionError(launcher.communicate()[0]) from None
        launcher.send_signal(signal.SIGTERM)
        output, _ = launcher.communicate(timeout=60)
    finally:
        launcher.kill()
    assert fake_vertex.requests["cancel"] == 2, output
    assert fake_vertex.wait_for_state(job_id, {"CANCELLED"}, 30) == "PIPELINE_STATE_CANCELLED"
    assert "Cancelled https://console.cloud.google.com/vertex-ai/" in output
    assert read_json(sweep / "0" / "vertex_status.json")["state"] == "CANCELLED"


def test_a_watch_that_cannot_read_the_run_gives_up_and_says_where_it_is(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    fake_vertex.fail_next("get", count=10_000, status=503)
    sweep = tmp_path / "multirun"
    args = sweep_args(fake_vertex, gcs_bucket, sweep, "+x=1", f"+go={tmp_path / 'go'}")
    args.append("hydra.launcher.request_timeout=1")  # after sweep_args' own
    proc = run_app("chatty.py", args, tmp_path, timeout=120)
    assert proc.returncode != 0
    (job_id,) = fake_vertex.jobs
    output = proc.stdout + proc.stderr
    said = [f"({n}/5)" in output for n in range(1, 6)]
    assert said == [True] * 4 + [False], "five failed reads in a row end the watch"
    assert f"{job_id}" in output and f"hydra-vertex-pipeline attach {sweep}" in output
    assert fake_vertex.requests["cancel"] == 0, "the run goes on: the user decides"
    assert fake_vertex.jobs[job_id].state == "PIPELINE_STATE_RUNNING", output
    (tmp_path / "go").touch()


def test_labels_reach_vertex_as_its_rules_take_them(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    long_value = "Run " + "x" * 80
    sweep = tmp_path / "multirun"
    args = sweep_args(
        fake_vertex,
        gcs_bucket,
        sweep,
        "+x=1",
        f"+hydra.launcher.labels._team='{long_value}'",
        "+hydra.launcher.labels.Owner=Ada Lovelace",
        "+hydra.launcher.labels.v2=x",
    )
    proc = run_app("flaky.py", args, tmp_path)
    assert proc.returncode == 0, proc.stderr  # the fake refuses what Vertex refuses
    (job,) = fake_vertex.jobs.values()
    assert job.body["labels"] == {
        "hydra_job_name": "flaky",
        "launcher": "hydra-vertex-pipeline",
        "k_team": ("run-" + "x" * 80)[:63],
        "owner": "ada-lovelace",
        "v2": "x",
    }


def test_one_failed_job_does_not_stop_the_jobs_after_it(
    one_at_a_time: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    """The run fails slow: Vertex's fail-fast would start no task once one has failed."""
    sweep = tmp_path / "multirun"
    proc = run_app("flaky.py", sweep_args(one_at_a_time, gcs_bucket, sweep, "+x=2,1,3"), tmp_path)
    assert proc.returncode != 0
    states = [read_json(sweep / n / "vertex_status.json")["state"] for n in ("0", "1", "2")]
    assert states == ["FAILED", "SUCCEEDED", "SUCCEEDED"]
    assert (sweep / "2" / "artifact.txt").read_text() == "x=3\n"
