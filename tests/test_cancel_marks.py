"""A cancel marks every job that had not ended, on either backend: those that never started are
marked at once, each saying why (not collected one by one); those that had started are collected
(they may have handed back a result as they were stopped)."""

from __future__ import annotations

import signal
from pathlib import Path

from apputil import job_state, read_json, start_app, wait_until
from fake_vertex import FakeVertex
from vertexutil import only_job, sweep_args

JOBS = 24
REASON = "cancelled: the launcher was interrupted"


def _check_every_job_marked(sweep: Path, output: str) -> None:
    assert "Traceback" not in output
    record = read_json(next(sweep.glob("vertex_pipeline/*/run.json")))
    assert record["state"] == "CANCELLED"
    unstarted = 0
    for num in range(JOBS):
        status = read_json(sweep / str(num) / "vertex_status.json")
        assert status["state"] == "CANCELLED" and status["ended"], (num, status)
        assert record["jobs"][str(num)]["state"] == "CANCELLED"
        if status["started"] is None:
            assert status["error"] == REASON, (num, status)
            unstarted += 1
    assert unstarted >= JOBS - 4  # at most a few steps ran at once


def test_sigterm_marks_every_unfinished_local_job(tmp_path: Path) -> None:
    sweep = tmp_path / "m"
    args = ["-m", f"+x=range(0,{JOBS})", "+fault=hang", "+hang_for=120"]
    args += ["hydra/launcher=vertex_pipeline_local", f"hydra.sweep.dir={sweep}"]
    launcher = start_app("faults.py", args, tmp_path)
    try:
        wait_until(lambda: job_state(sweep / "0") == "RUNNING", timeout=120)
        launcher.send_signal(signal.SIGTERM)
        output, _ = launcher.communicate(timeout=60)
    finally:
        launcher.kill()
    assert launcher.returncode == 128 + signal.SIGTERM, output
    assert job_state(sweep / str(JOBS - 1)) == "CANCELLED"
    _check_every_job_marked(sweep, output)


def test_sigterm_marks_every_unfinished_vertex_job(
    tmp_path: Path, fake_vertex: FakeVertex, gcs_bucket: str
) -> None:
    sweep = tmp_path / "m"
    fake_vertex.hold_tasks()  # none of them ever starts
    args = sweep_args(fake_vertex, gcs_bucket, sweep, f"+x=range(0,{JOBS})", "+fault=none")
    launcher = start_app("faults.py", args, tmp_path)
    try:
        run_id = only_job(fake_vertex)
        wait_until(
            lambda: read_json(next(sweep.glob("vertex_pipeline/*/run.json")))["status_reads"]
        )
        launcher.send_signal(signal.SIGTERM)
        output, _ = launcher.communicate(timeout=60)
    finally:
        launcher.kill()
    assert launcher.returncode == 128 + signal.SIGTERM, output
    assert fake_vertex.jobs[run_id].state == "PIPELINE_STATE_CANCELLED"
    _check_every_job_marked(sweep, output)
