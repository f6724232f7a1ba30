"""A run without -m goes through the launcher too: one job, one pipeline run, into hydra.run.dir."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Dict, List

import pytest
import yaml
from apputil import job_state, read_json, run_app, start_app, wait_until
from fake_vertex import FakeVertex
from vertexutil import vertex_overrides

LOCAL = "hydra/launcher=vertex_pipeline_local"
VERTEX = "hydra/launcher=vertex_pipeline"


def _vertex(fake: FakeVertex, bucket: str) -> List[str]:
    return [VERTEX, *vertex_overrides(fake, bucket)]


def _only_run_dir(run_dir: Path) -> Path:
    (record_dir,) = (run_dir / "vertex_pipeline").iterdir()
    return record_dir


def _assert_succeeded_into(run_dir: Path, x: int) -> None:
    assert (run_dir / "artifact.txt").read_text() == f"x={x}\n"
    assert f"job with x={x} starts" in (run_dir / "flaky.log").read_text()
    assert yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text()) == [f"+x={x}"]
    assert read_json(run_dir / "vertex_status.json")["state"] == "SUCCEEDED"
    record_dir = _only_run_dir(run_dir)
    spec = yaml.safe_load((record_dir / "pipeline.yaml").read_text())
    assert len(spec["root"]["dag"]["tasks"]) == 1
    assert read_json(record_dir / "run.json")["state"] == "SUCCEEDED"


def test_a_single_run_is_a_one_step_pipeline_run(tmp_path: Path) -> None:
    # ${now:...} is resolved once: the step must write where the launcher collects.
    proc = run_app("flaky.py", ["+x=1", LOCAL, "hydra.run.dir=out/${now:%H-%M-%S-%f}"], tmp_path)

    assert proc.returncode == 0, proc.stderr
    (run_dir,) = (tmp_path / "out").iterdir()
    _assert_succeeded_into(run_dir, 1)
    assert "one-step pipeline run on the local backend" in proc.stdout
    # The run's own record is not mirrored back into itself as an output of the job.
    assert not list(run_dir.glob("vertex_pipeline/*/jobs/0/output/vertex_pipeline"))


def test_a_failed_single_run_exits_non_zero_with_the_jobs_error(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = run_app("flaky.py", ["+x=2", LOCAL, f"hydra.run.dir={run_dir}"], tmp_path)

    assert proc.returncode != 0
    assert "ValueError: x=2 is not allowed here" in proc.stderr
    assert (run_dir / "artifact.txt").read_text() == "x=2\n"
    status = read_json(run_dir / "vertex_status.json")
    assert status["state"] == "FAILED" and "x=2 is not allowed here" in status["error"]


def test_single_run_in_process_keeps_the_run_on_this_machine(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = ["+x=1", LOCAL, f"hydra.run.dir={run_dir}", "hydra.launcher.single_run=in_process"]
    proc = run_app("flaky.py", args, tmp_path)

    assert proc.returncode == 0, proc.stderr
    assert "Running in this process (hydra.launcher.single_run=in_process)" in proc.stdout
    assert (run_dir / "artifact.txt").read_text() == "x=1\n"
    assert not (run_dir / "vertex_pipeline").exists()
    assert not (run_dir / "vertex_status.json").exists()


def test_a_bad_single_run_setting_is_named(tmp_path: Path) -> None:
    args = ["+x=1", LOCAL, f"hydra.run.dir={tmp_path / 'run'}", "hydra.launcher.single_run=maybe"]
    proc = run_app("flaky.py", args, tmp_path)

    assert proc.returncode != 0
    assert "hydra.launcher.single_run='maybe'" in proc.stderr
    assert not (tmp_path / "run" / "artifact.txt").exists()


def test_other_launchers_run_single_runs_in_process(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = run_app("flaky.py", ["+x=1", f"hydra.run.dir={run_dir}"], tmp_path)

    assert proc.returncode == 0, proc.stderr
    assert (run_dir / "artifact.txt").exists() and not (run_dir / "vertex_pipeline").exists()


def test_ctrl_c_cancels_a_single_run(tmp_path: Path) -> None:
    board, run_dir = tmp_path / "board", tmp_path / "run"
    args = ["+x=0", LOCAL, f"+board={board}", "+sleep=120", f"hydra.run.dir={run_dir}"]
    launcher = start_app("rendezvous.py", args, tmp_path)
    try:
        wait_until(lambda: (board / "0.json").exists(), timeout=60)
        launcher.send_signal(signal.SIGINT)
        output, _ = launcher.communicate(timeout=60)
    finally:
        launcher.kill()
    assert launcher.returncode != 0
    assert "cancelling" in output
    assert read_json(run_dir / "vertex_status.json")["state"] == "CANCELLED"
    assert read_json(_only_run_dir(run_dir) / "run.json")["state"] == "CANCELLED"


def test_a_single_run_on_vertex(fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = ["+x=3", *_vertex(fake_vertex, gcs_bucket), f"hydra.run.dir={run_dir}"]
    proc = run_app("flaky.py", args, tmp_path)

    assert proc.returncode == 0, proc.stderr
    assert fake_vertex.requests["create"] == 1
    _assert_succeeded_into(run_dir, 3)
    (job_id,) = fake_vertex.jobs
    run = read_json(run_dir / "vertex_pipeline" / job_id / "run.json")
    assert run["console_url"] in proc.stdout


def test_a_failed_single_run_on_vertex(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    args = ["+x=2", *_vertex(fake_vertex, gcs_bucket), f"hydra.run.dir={run_dir}"]
    proc = run_app("flaky.py", args, tmp_path)

    assert proc.returncode != 0
    assert "ValueError: x=2 is not allowed here" in proc.stderr
    assert (run_dir / "artifact.txt").read_text() == "x=2\n"
    assert read_json(run_dir / "vertex_status.json")["state"] == "FAILED"


@pytest.mark.parametrize("signum", [signal.SIGINT])
def test_ctrl_c_cancels_a_single_run_on_vertex(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path, signum: int
) -> None:
    run_dir = tmp_path / "run"
    args = ["+x=0", f"+board={tmp_path / 'board'}", "+sleep=120", f"hydra.run.dir={run_dir}"]
    launcher = start_app("rendezvous.py", [*args, *_vertex(fake_vertex, gcs_bucket)], tmp_path)
    try:
        wait_until(lambda: len(fake_vertex.jobs) == 1)
        (job_id,) = fake_vertex.jobs
        for task_key in fake_vertex.jobs[job_id].tasks:
            fake_vertex.wait_for_task_state(job_id, task_key, {"RUNNING"}, timeout=60)
        wait_until(lambda: job_state(run_dir) == "RUNNING")
        launcher.send_signal(signum)
        output, _ = launcher.communicate(timeout=60)
    finally:
        launcher.kill()
    assert launcher.returncode != 0
    assert fake_vertex.requests["cancel"] == 1
    assert "cancelling" in output.lower()
    assert read_json(run_dir / "vertex_status.json")["state"] == "CANCELLED"


def test_an_app_run_inside_a_step_never_launches_again(tmp_path: Path) -> None:
    # What every step's environment carries (the compiled spec sets it), as command mode needs.
    spec_env = _step_env(tmp_path)
    run_dir = tmp_path / "inner"
    env = {**os.environ, **spec_env}
    proc = run_app("flaky.py", ["+x=1", LOCAL, f"hydra.run.dir={run_dir}"], tmp_path, env)

    assert proc.returncode == 0, proc.stderr
    assert (run_dir / "artifact.txt").exists() and not (run_dir / "vertex_pipeline").exists()


def _step_env(tmp_path: Path) -> Dict[str, str]:
    run_dir = tmp_path / "outer"
    proc = run_app("flaky.py", ["+x=1", LOCAL, f"hydra.run.dir={run_dir}"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    spec = yaml.safe_load((_only_run_dir(run_dir) / "pipeline.yaml").read_text())
    (executor,) = spec["deploymentSpec"]["executors"].values()
    return {e["name"]: e["value"] for e in executor["container"]["env"]}
