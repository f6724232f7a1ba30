"""Interrupts tell the truth, and end within bounds: against the fake Vertex and the emulator."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from apputil import read_json, start_app, wait_until
from fake_vertex import FakeVertex
from google.cloud import storage
from vertexutil import LOCATION, PROJECT, only_job, sweep_args


def test_a_cancel_vertex_never_answers_ends_the_launcher_and_says_the_run_may_go_on(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    fake_vertex.stall_after_create()
    sweep = tmp_path / "multirun"
    args = sweep_args(
        fake_vertex,
        gcs_bucket,
        sweep,
        "+x=1,2",
        f"+go={tmp_path / 'go'}",
        "hydra.launcher.request_timeout=5",
    )
    launcher = start_app("chatty.py", args, tmp_path)
    try:
        job_id = only_job(fake_vertex)
        wait_until(lambda: fake_vertex.requests["get"] >= 1)  # the create has been answered
        launcher.send_signal(signal.SIGTERM)
        output, _ = launcher.communicate(timeout=90)
    finally:
        launcher.kill()
    assert launcher.returncode == 128 + signal.SIGTERM and "Traceback" not in output
    resource = f"projects/{PROJECT}/locations/{LOCATION}/pipelineJobs/{job_id}"
    assert f"Could not confirm the cancel of {resource}" in output
    assert "It may still be running" in output and f"pipelines/runs/{job_id}" in output
    assert "Cancelled https://" not in output
    for num in ("0", "1"):
        status = read_json(sweep / num / "vertex_status.json")
        assert status["state"] != "CANCELLED"
        assert "could not confirm that the run was cancelled" in status["error"]
    run = read_json(sweep / "vertex_pipeline" / job_id / "run.json")
    assert run["state"] != "CANCELLED" and "may still be running" in run["error"]


def test_ctrl_c_while_the_create_is_in_flight_cancels_the_run_once_it_appears(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    fake_vertex.delay_create(3.0)
    sweep = tmp_path / "multirun"
    args = sweep_args(fake_vertex, gcs_bucket, sweep, "+x=1", f"+go={tmp_path / 'go'}")
    launcher = start_app("chatty.py", args, tmp_path)
    try:
        wait_until(lambda: fake_vertex.requests["create"] == 1)
        assert fake_vertex.jobs == {}, "the create is still in flight"
        launcher.send_signal(signal.SIGINT)
        output, _ = launcher.communicate(timeout=90)
    finally:
        launcher.kill()
    assert launcher.returncode != 0
    job_id = only_job(fake_vertex)
    assert fake_vertex.wait_for_state(job_id, {"CANCELLED"}, timeout=30).endswith("CANCELLED")
    assert "never created" not in output and "nothing to cancel" not in output
    assert "Cancelled https://console.cloud.google.com/" in output
    assert read_json(sweep / "0" / "vertex_status.json")["state"] == "CANCELLED"


@pytest.mark.parametrize("interrupts", [1, 2])
def test_ctrl_c_while_a_job_is_collected_keeps_its_collected_state(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path, interrupts: int
) -> None:
    """A second Ctrl-C too: it lands while the launcher waits for the collection under way."""
    sweep = tmp_path / "multirun"
    files = 600
    args = sweep_args(fake_vertex, gcs_bucket, sweep, "+x=1", f"+files={files}")
    launcher = start_app("many_files.py", args, tmp_path)
    try:
        # Only collecting brings out/ into the job's dir: interrupt as soon as it starts.
        wait_until(lambda: (sweep / "0" / "out").is_dir(), timeout=120)
        for _ in range(interrupts):
            launcher.send_signal(signal.SIGINT)
            time.sleep(0.05)
        output, _ = launcher.communicate(timeout=90)
    finally:
        launcher.kill()
    assert len(list((sweep / "0" / "out").glob("*.txt"))) == files, output
    status = read_json(sweep / "0" / "vertex_status.json")
    assert status["state"] == "SUCCEEDED", status
    assert "nothing was cancelled" in output
    record = read_json(sweep / "vertex_pipeline" / only_job(fake_vertex) / "run.json")
    assert record["jobs"]["0"] == {**record["jobs"]["0"], "state": "SUCCEEDED", "collected": True}


STAGE_MANY = textwrap.dedent(
    """
    import sys
    from hydra_plugins.hydra_vertex_pipeline_launcher._shared._storage import open_storage

    store = open_storage(sys.argv[1], timeout=30)
    store.write_many({f"jobs/{n}/config.yaml": b"x: 1" for n in range(int(sys.argv[2]))})
    """
)


def test_ctrl_c_during_staging_stops_after_the_transfers_under_way(
    gcs_bucket: str, tmp_path: Path
) -> None:
    objects = 1500
    stager = subprocess.Popen(
        [sys.executable, "-c", STAGE_MANY, f"gs://{gcs_bucket}/hydra/run-1", str(objects)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    bucket = storage.Client().bucket(gcs_bucket)

    def staged() -> int:
        return sum(1 for _ in bucket.list_blobs(prefix="hydra/run-1/"))

    try:
        wait_until(lambda: staged() > 0)
        stager.send_signal(signal.SIGINT)
        output, _ = stager.communicate(timeout=60)
    finally:
        stager.kill()
    assert "KeyboardInterrupt" in output
    assert staged() < objects // 2, "the queued uploads were not all waited for"
