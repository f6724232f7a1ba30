"""The whole flow on the local backend, as a user runs it."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
import yaml
from apputil import read_json, run_app, start_app, wait_until

LOCAL = "hydra/launcher=vertex_pipeline_local"


def test_one_failing_job_keeps_every_other_jobs_results(tmp_path: Path) -> None:
    sweep = tmp_path / "multirun"
    proc = run_app("flaky.py", ["-m", "+x=1,2,3", LOCAL, f"hydra.sweep.dir={sweep}"], tmp_path)

    assert proc.returncode != 0
    assert "ValueError: x=2 is not allowed here" in proc.stderr
    for num, x in ((0, 1), (2, 3)):
        job_dir = sweep / str(num)
        assert (job_dir / "artifact.txt").read_text() == f"x={x}\n"
        assert f"job with x={x} starts" in (job_dir / "flaky.log").read_text()
        assert read_json(job_dir / "vertex_status.json")["state"] == "SUCCEEDED"
    failed = sweep / "1"
    assert (failed / "artifact.txt").read_text() == "x=2\n"
    status = read_json(failed / "vertex_status.json")
    assert status["state"] == "FAILED"
    assert "Traceback" in status["error"] and "x=2 is not allowed here" in status["error"]
    # The job's own log as Hydra's basic launcher leaves it (#18): its lines, no traceback.
    assert "job with x=2 starts" in (failed / "flaky.log").read_text()
    assert "Traceback" not in (failed / "flaky.log").read_text()
    run = read_json(next((sweep / "vertex_pipeline").glob("*/run.json")))
    assert run["state"] == "FAILED"
    assert {job["state"] for job in run["jobs"].values()} == {"SUCCEEDED", "FAILED"}


def test_layout_of_a_run(tmp_path: Path) -> None:
    sweep = tmp_path / "multirun"
    overrides = ["+x=1,3", "+double=${x}", "+token=${oc.env:API_TOKEN}", "+name=${hydra:job.name}"]
    env = {**os.environ, "API_TOKEN": "s3cret"}
    proc = run_app("flaky.py", ["-m", *overrides, LOCAL, f"hydra.sweep.dir={sweep}"], tmp_path, env)
    assert proc.returncode == 0, proc.stderr

    (run_dir,) = (sweep / "vertex_pipeline").iterdir()
    spec = yaml.safe_load((run_dir / "pipeline.yaml").read_text())
    names = sorted(t["taskInfo"]["name"] for t in spec["root"]["dag"]["tasks"].values())
    assert [name.split(" +double=")[0] for name in names] == ["#0 +x=1", "#1 +x=3"]
    staged = run_dir / "jobs" / "1"
    # Resolved, but for environment lookups: this machine's secrets stay out of the bucket.
    assert yaml.safe_load((staged / "config.yaml").read_text()) == {
        "x": 3,
        "double": 3,
        "token": "${oc.env:API_TOKEN}",
        "name": "flaky",
    }
    assert yaml.safe_load((staged / "overrides.yaml").read_text())[0] == "+x=3"
    assert yaml.safe_load((staged / "hydra.yaml").read_text())["job"]["num"] == 1
    assert (staged / "payload.pkl").stat().st_size > 0
    assert (run_dir / "shared.pkl").stat().st_size > 0
    run = read_json(run_dir / "run.json")
    assert run["state"] == "SUCCEEDED" and run["backend"] == "local"
    assert run["jobs"]["1"] == {
        "task_name": run["jobs"]["1"]["task_name"],
        "display_name": names[1],
        "dir": "../../1",  # relative to run.json: the sweep dir may move
        "state": "SUCCEEDED",
        # As Hydra wrote them for the job, escaped: the same command line selects the same job.
        "overrides": yaml.safe_load((sweep / "1" / ".hydra" / "overrides.yaml").read_text()),
        "log_name": "flaky.log",
        "collected": True,
        "superseded_by": None,
    }
    status = read_json(sweep / "1" / "vertex_status.json")
    assert status["job_num"] == 1 and status["started"] and status["ended"]


def test_steps_run_in_parallel_up_to_max_parallel(tmp_path: Path) -> None:
    # Each job waits until all four have started: only four at once can get through.
    proc = _four_jobs(tmp_path, "+wait_for=4", "hydra.launcher.local.max_parallel=4")
    assert proc.returncode == 0, proc.stderr


def test_max_parallel_caps_concurrency(tmp_path: Path) -> None:
    board = tmp_path / "board"
    proc = _four_jobs(tmp_path, "+sleep=0.5", "hydra.launcher.local.max_parallel=2")
    assert proc.returncode == 0, proc.stderr
    spans = [read_json(p) for p in board.glob("*.json")]
    assert len(spans) == 4
    most_at_once = max(
        sum(1 for other in spans if other["start"] <= span["start"] < other["end"])
        for span in spans
    )
    assert most_at_once <= 2


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_cancels_the_run_and_kills_its_steps(tmp_path: Path, signum: int) -> None:
    board, sweep = tmp_path / "board", tmp_path / "m"
    launcher = _two_slow_jobs(tmp_path, board, sweep)
    try:
        wait_until(lambda: len(list(board.glob("*.json"))) == 2, timeout=60)
        pids = [read_json(p)["pid"] for p in board.glob("*.json")]
        launcher.send_signal(signum)
        output, _ = launcher.communicate(timeout=60)
    finally:
        launcher.kill()
    assert launcher.returncode != 0
    assert "cancelling" in output
    if signum == signal.SIGTERM:  # handled and said: the signal's own exit status, no traceback
        assert launcher.returncode == 128 + signum and "Traceback" not in output
    for pid in pids:
        wait_until(lambda pid=pid: not _alive(pid), timeout=15)
    for num in ("0", "1"):
        assert read_json(sweep / num / "vertex_status.json")["state"] == "CANCELLED"
    assert read_json(next(sweep.glob("vertex_pipeline/*/run.json")))["state"] == "CANCELLED"


def test_ctrl_c_keeps_the_results_of_jobs_that_ended_since_the_last_poll(tmp_path: Path) -> None:
    board, sweep = tmp_path / "board", tmp_path / "m"
    # Job 0 is quick; the watcher reads the run once, then sleeps through Ctrl-C.
    launcher = _two_slow_jobs(
        tmp_path,
        board,
        sweep,
        "+slow_from=1",
        "hydra.launcher.poll_interval=600",
        "hydra.launcher.max_poll_interval=600",
    )
    try:
        # Job 0 has handed back its result; the watcher, asleep, has not seen it end.
        wait_until(lambda: any(sweep.glob("vertex_pipeline/*/jobs/0/result.pkl")), timeout=60)
        launcher.send_signal(signal.SIGINT)
        launcher.communicate(timeout=60)
    finally:
        launcher.kill()
    assert read_json(sweep / "0" / "vertex_status.json")["state"] == "SUCCEEDED"
    assert read_json(sweep / "1" / "vertex_status.json")["state"] == "CANCELLED"


def test_vertex_settings_missing_are_named_before_anything_is_staged(tmp_path: Path) -> None:
    sweep = tmp_path / "m"
    proc = run_app(
        "flaky.py",
        ["-m", "+x=1", "hydra/launcher=vertex_pipeline", f"hydra.sweep.dir={sweep}"],
        tmp_path,
    )
    assert proc.returncode != 0
    assert "hydra.launcher.project is not set" in proc.stderr
    assert not (sweep / "vertex_pipeline").exists()


def _four_jobs(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    """rendezvous.py with x=0..3, each job on tmp_path/board."""
    board, sweep = tmp_path / "board", tmp_path / "m"
    args = ["-m", "+x=0,1,2,3", LOCAL, f"+board={board}", f"hydra.sweep.dir={sweep}"]
    return run_app("rendezvous.py", [*args, *overrides], tmp_path)


def _two_slow_jobs(
    tmp_path: Path, board: Path, sweep: Path, *overrides: str
) -> subprocess.Popen[str]:
    args = ["-m", "+x=0,1", LOCAL, f"+board={board}", "+sleep=120", f"hydra.sweep.dir={sweep}"]
    return start_app("rendezvous.py", [*args, *overrides], tmp_path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_bad_resource_quantity_is_named_before_anything_is_staged(tmp_path: Path) -> None:
    sweep = tmp_path / "m"
    args = [
        "-m",
        "+x=1",
        LOCAL,
        f"hydra.sweep.dir={sweep}",
        "hydra.launcher.resources.memory_limit=12X",
    ]
    proc = run_app("flaky.py", args, tmp_path)
    assert proc.returncode != 0
    assert "hydra.launcher.resources.memory_limit='12X': Invalid memory string" in proc.stderr
    assert not (sweep / "vertex_pipeline").exists(), "no half run is left behind"


def test_jobs_start_in_job_number_order(tmp_path: Path) -> None:
    # One lane: the order the steps start in is the order the backend hands them out.
    board, sweep = tmp_path / "board", tmp_path / "m"
    xs = ",".join(str(x) for x in range(12))
    args = ["-m", f"+x={xs}", LOCAL, f"+board={board}", f"hydra.sweep.dir={sweep}"]
    proc = run_app("rendezvous.py", [*args, "hydra.launcher.local.max_parallel=1"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    starts = {int(p.stem): read_json(p)["start"] for p in board.glob("*.json")}
    assert sorted(starts, key=starts.__getitem__) == list(range(12))
