"""`hydra-vertex-pipeline status|attach|cancel`, run as a user runs it, against the fake Vertex
and the Cloud Storage emulator."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

from apputil import read_json, run_app, start_app, wait_until
from cliutil import COMMAND, run_cli, start_app_with_env, table_rows
from fake_vertex import FakeVertex
from tcp_proxy import SwitchableProxy
from vertexutil import vertex_overrides

VERTEX = "hydra/launcher=vertex_pipeline"
LOCAL = "hydra/launcher=vertex_pipeline_local"


def _args(fake: FakeVertex, bucket: str, sweep: Path, *overrides: str) -> List[str]:
    return ["-m", *overrides, VERTEX, f"hydra.sweep.dir={sweep}", *vertex_overrides(fake, bucket)]


def _only_job(fake: FakeVertex) -> str:
    wait_until(lambda: len(fake.jobs) == 1)
    (job_id,) = fake.jobs
    return job_id


def _detached_chatty(fake: FakeVertex, bucket: str, tmp_path: Path, *overrides: str) -> Path:
    """A chatty.py sweep on Vertex, launched with wait=false: its jobs wait for tmp_path/go."""
    sweep = tmp_path / "multirun"
    args = _args(fake, bucket, sweep, *overrides, f"+go={tmp_path / 'go'}")
    proc = run_app("chatty.py", [*args, "hydra.launcher.wait=false"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    return sweep


def _job_states(sweep: Path, jobs: int) -> List[str]:
    return [read_json(sweep / str(n) / "vertex_status.json")["state"] for n in range(jobs)]


def _collected_files(sweep: Path, jobs: int) -> Dict[Path, int]:
    """Each collected file's modification time, in ns: a second collect would change them."""
    names = ("where.json", "chatty.log", "vertex_result.pkl")
    return {
        sweep / str(n) / name: (sweep / str(n) / name).stat().st_mtime_ns
        for n in range(jobs)
        for name in names
    }


def test_attach_after_the_launcher_is_killed_collects_every_job_once(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    sweep, go = tmp_path / "multirun", tmp_path / "go"
    fake_vertex.hold_tasks()
    launcher = start_app(
        "chatty.py", _args(fake_vertex, gcs_bucket, sweep, "+x=1,2,3,4", f"+go={go}"), tmp_path
    )
    try:
        job_id = _only_job(fake_vertex)
        launcher.send_signal(signal.SIGKILL)
        launcher.communicate(timeout=30)
    finally:
        launcher.kill()
    fake_vertex.release_tasks()
    go.touch()

    attached = run_cli("attach", str(sweep))
    assert attached.returncode == 0, attached.stdout
    assert "4/4 succeeded" in attached.stdout
    for num in range(4):
        job_dir = sweep / str(num)
        assert read_json(job_dir / "where.json")["output_dir"].endswith(f"multirun/{num}")
        assert f"step 2 of job x={num + 1}" in (job_dir / "chatty.log").read_text()
        assert read_json(job_dir / "vertex_status.json")["state"] == "SUCCEEDED"
        assert (job_dir / "vertex_result.pkl").is_file()
    assert fake_vertex.requests["create"] == 1
    run = read_json(sweep / "vertex_pipeline" / job_id / "run.json")
    assert run["state"] == "SUCCEEDED"
    assert all(job["collected"] for job in run["jobs"].values())

    gets = fake_vertex.requests["get"]
    shown = run_cli("status", str(sweep))
    assert shown.returncode == 0, shown.stdout
    rows = table_rows(shown.stdout)
    assert [rows[str(n)][1] for n in range(4)] == ["SUCCEEDED"] * 4
    assert rows["2"][0] == f"+x=3 +go={go}"
    assert f"pipelines/runs/{job_id}" in shown.stdout
    assert fake_vertex.requests["get"] == gets, "a finished run is read from its files only"

    collected = _collected_files(sweep, 4)
    again = run_cli("attach", str(sweep))
    assert again.returncode == 0, again.stdout
    assert _collected_files(sweep, 4) == collected, "a collected job was collected again"
    assert fake_vertex.requests["get"] == gets


def test_status_of_a_finished_local_sweep_and_attach_saying_a_local_run_cannot_outlive_it(
    tmp_path: Path,
) -> None:
    sweep = tmp_path / "multirun"
    proc = run_app("flaky.py", ["-m", "+x=1,2,3", LOCAL, f"hydra.sweep.dir={sweep}"], tmp_path)
    assert proc.returncode != 0

    shown = run_cli("status", str(sweep))
    assert shown.returncode == 1, shown.stdout  # every job ended, one failed
    rows = table_rows(shown.stdout)
    assert [rows[n][:2] for n in ("0", "1", "2")] == [
        ["+x=1", "SUCCEEDED"],
        ["+x=2", "FAILED"],
        ["+x=3", "SUCCEEDED"],
    ]
    assert rows["1"][-1] == "ValueError: x=2 is not allowed here"
    assert "3 jobs: 2/3 succeeded, 1 failed" in shown.stdout
    (record_dir,) = (sweep / "vertex_pipeline").iterdir()
    assert f"run {record_dir.name} (FAILED): local backend" in shown.stdout
    # A run's own record dir means that run.
    assert table_rows(run_cli("status", str(record_dir)).stdout) == rows

    attached = run_cli("attach", str(sweep))
    assert attached.returncode == 1
    assert "a local run cannot outlive its launcher" in attached.stdout
    assert table_rows(attached.stdout) == rows


def test_status_of_a_running_vertex_run_reads_vertex_once(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    sweep = _detached_chatty(fake_vertex, gcs_bucket, tmp_path, "+x=1,2")
    job_id = _only_job(fake_vertex)
    wait_until(lambda: all(t.state == "RUNNING" for t in fake_vertex.jobs[job_id].tasks.values()))
    gets = fake_vertex.requests["get"]

    shown = run_cli("status", str(sweep))
    assert shown.returncode == 3, shown.stdout  # its jobs have not ended
    assert fake_vertex.requests["get"] == gets + 1
    rows = table_rows(shown.stdout)
    assert [rows[n][1] for n in ("0", "1")] == ["RUNNING", "RUNNING"]
    assert "2 jobs: 0/2 succeeded, 2 running" in shown.stdout
    # status only reads: the job dirs still say what the launcher left.
    assert _job_states(sweep, 2) == ["PENDING", "PENDING"]


def test_cancel_of_a_running_vertex_run_cancels_it_once(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    sweep = _detached_chatty(fake_vertex, gcs_bucket, tmp_path, "+x=1,2")
    job_id = _only_job(fake_vertex)
    wait_until(lambda: all(t.state == "RUNNING" for t in fake_vertex.jobs[job_id].tasks.values()))

    cancelled = run_cli("cancel", str(sweep))
    assert cancelled.returncode == 0, cancelled.stdout
    assert fake_vertex.requests["cancel"] == 1
    assert fake_vertex.wait_for_state(job_id, {"CANCELLED"}, timeout=30).endswith("CANCELLED")
    assert _job_states(sweep, 2) == ["CANCELLED", "CANCELLED"]
    run = read_json(sweep / "vertex_pipeline" / job_id / "run.json")
    assert run["state"] == "CANCELLED"
    assert "Cancelled https://console.cloud.google.com/vertex-ai/" in cancelled.stdout


def test_a_cancel_vertex_does_not_confirm_marks_no_job_cancelled(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    sweep = _detached_chatty(
        fake_vertex, gcs_bucket, tmp_path, "+x=1", "hydra.launcher.request_timeout=3"
    )
    job_id = _only_job(fake_vertex)
    fake_vertex.fail_next("cancel", 1000)

    cancelled = run_cli("cancel", str(sweep))
    assert cancelled.returncode == 1, cancelled.stdout
    assert "Could not confirm the cancel" in cancelled.stdout
    status = read_json(sweep / "0" / "vertex_status.json")
    assert status["state"] == "PENDING"
    assert "could not confirm that the run was cancelled" in status["error"]
    assert fake_vertex.jobs[job_id].state != "PIPELINE_STATE_CANCELLED"


def _launcher_env(storage_endpoint: str) -> Dict[str, str]:
    return {**os.environ, "STORAGE_EMULATOR_HOST": storage_endpoint}


def test_storage_failing_while_collecting_fails_the_job_and_attach_fetches_it_later(
    fake_vertex: FakeVertex, gcs_bucket: str, storage_proxy: SwitchableProxy, tmp_path: Path
) -> None:
    # The steps reach the emulator directly (the fake's environment); only the launcher's
    # Cloud Storage goes through the proxy.
    sweep, go = tmp_path / "multirun", tmp_path / "go"
    args = _args(
        fake_vertex, gcs_bucket, sweep, "+x=1", f"+go={go}", "hydra.launcher.request_timeout=4"
    )
    env = _launcher_env(storage_proxy.endpoint)
    launcher = start_app_with_env("chatty.py", args, tmp_path, env)
    try:
        job_id = _only_job(fake_vertex)
        storage_proxy.refuse()
        go.touch()
        output, _ = launcher.communicate(timeout=120)
    finally:
        launcher.kill()
    assert launcher.returncode != 0
    assert storage_proxy.refused > 1, "the collect was not retried"
    status = read_json(sweep / "0" / "vertex_status.json")
    assert status["state"] == "FAILED"
    staged = f"gs://{gcs_bucket}/hydra/{job_id}/jobs/0"
    assert "could not be collected" in status["error"] and f"still in {staged}" in status["error"]
    assert f"hydra-vertex-pipeline attach {sweep}" in status["error"]
    assert not (sweep / "0" / "vertex_result.pkl").exists()
    assert not read_json(sweep / "vertex_pipeline" / job_id / "run.json")["jobs"]["0"]["collected"]

    storage_proxy.restore()
    attached = run_cli("attach", str(sweep), env=env)
    assert attached.returncode == 0, attached.stdout
    assert read_json(sweep / "0" / "vertex_status.json")["state"] == "SUCCEEDED"
    assert "step 2 of job x=1" in (sweep / "0" / "chatty.log").read_text()
    assert (sweep / "0" / "vertex_result.pkl").is_file()


def test_vertex_unreadable_for_a_while_then_back_the_watch_resumes(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    sweep = tmp_path / "multirun"
    # Each status read retries for request_timeout; these failures outlast more than one read.
    fake_vertex.fail_next("get", 12)
    args = _args(fake_vertex, gcs_bucket, sweep, "+x=1,3", "hydra.launcher.request_timeout=2")
    proc = run_app("flaky.py", args, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "status failed" in proc.stdout and "trying again" in proc.stdout
    assert _job_states(sweep, 2) == ["SUCCEEDED", "SUCCEEDED"]
    assert fake_vertex.requests["get"] > 12


def test_python_dash_m_is_the_same_command(tmp_path: Path) -> None:
    sweep = tmp_path / "multirun"
    proc = run_app("flaky.py", ["-m", "+x=1", LOCAL, f"hydra.sweep.dir={sweep}"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    module = "hydra_plugins.hydra_vertex_pipeline_launcher"
    by_module: Tuple[int, str] = _run([sys.executable, "-m", module, "status", str(sweep)])
    by_script = run_cli("status", str(sweep))
    assert by_module == (by_script.returncode, by_script.stdout)
    assert table_rows(by_module[1])["0"][:2] == ["+x=1", "SUCCEEDED"]


def _run(argv: List[str]) -> Tuple[int, str]:
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc.returncode, proc.stdout


def test_status_read_through_a_pipe_closed_early_ends_without_a_traceback(tmp_path: Path) -> None:
    sweep = tmp_path / "multirun"
    proc = run_app("flaky.py", ["-m", "+x=1,3", LOCAL, f"hydra.sweep.dir={sweep}"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    shown = run_cli("status", str(sweep))
    assert shown.returncode == 0, shown.stdout  # every job succeeded

    status = subprocess.Popen(
        [str(COMMAND), "status", str(sweep)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert status.stdout is not None and status.stderr is not None
    status.stdout.close()  # as `status DIR | head -1` does once it has its line
    said = status.stderr.read().decode()
    assert status.wait(timeout=60) == 141
    assert "Traceback" not in said and "BrokenPipeError" not in said, said


def test_attach_counts_the_jobs_that_ended_before_it(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    sweep = _detached_chatty(fake_vertex, gcs_bucket, tmp_path, "+x=1,2")
    (tmp_path / "go").touch()
    fake_vertex.wait_for_state(_only_job(fake_vertex), ["PIPELINE_STATE_SUCCEEDED"], timeout=120)

    attached = run_cli("attach", str(sweep))

    assert attached.returncode == 0, attached.stdout
    counts = [line for line in attached.stdout.splitlines() if "succeeded" in line]
    assert "2/2 succeeded" in counts[0], attached.stdout
    assert "pending" not in attached.stdout


def test_attach_names_each_failed_job_and_shows_its_console(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    sweep = tmp_path / "multirun"
    args = [*_args(fake_vertex, gcs_bucket, sweep, "+x=1,2"), "hydra.launcher.wait=false"]
    proc = run_app("flaky.py", args, tmp_path)
    assert proc.returncode == 0, proc.stderr
    fake_vertex.wait_for_state(_only_job(fake_vertex), ["PIPELINE_STATE_FAILED"], timeout=120)

    attached = run_cli("attach", str(sweep))

    assert attached.returncode == 1, attached.stdout
    assert "#1 +x=2 failed: ValueError: x=2 is not allowed here" in attached.stdout
    assert "[#1 +x=2] " in attached.stdout and "job with x=2 starts" in attached.stdout
    assert "[#0 " not in attached.stdout, "a job that succeeded says nothing"
