"""hydra.launcher.resume=true: jobs that succeeded before come back as they were; only the
others run, in a new pipeline run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import yaml
from apputil import multirun_returns, read_json, run_app
from cliutil import run_cli, table_rows
from fake_vertex import FakeVertex
from vertexutil import vertex_overrides

LOCAL = "hydra/launcher=vertex_pipeline_local"
VERTEX = "hydra/launcher=vertex_pipeline"
RESUME = "hydra.launcher.resume=true"
EXAMPLE = Path(__file__).parents[1] / "example_app" / "train.py"


def _snapshot(job_dir: Path) -> Dict[str, Tuple[int, bytes]]:
    """Every file of a job dir: its modification time and contents."""
    return {
        str(p.relative_to(job_dir)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(job_dir.rglob("*"))
        if p.is_file()
    }


def _runs(record_dir: Path) -> List[Path]:
    """The pipeline runs recorded in a sweep (or single run) dir, oldest first."""
    return sorted((record_dir / "vertex_pipeline").iterdir(), key=lambda p: p.stat().st_mtime)


def _task_names(run_dir: Path) -> List[str]:
    spec = yaml.safe_load((run_dir / "pipeline.yaml").read_text())
    return sorted(t["taskInfo"]["name"] for t in spec["root"]["dag"]["tasks"].values())


def test_resume_runs_only_the_job_that_failed(tmp_path: Path) -> None:
    sweep, fixed = tmp_path / "m", tmp_path / "fixed"
    args = ["-m", "+x=1,2,3", "+fail_x=2", f"+fixed={fixed}", LOCAL, f"hydra.sweep.dir={sweep}"]
    first = run_app("fixable.py", args, tmp_path)
    assert first.returncode != 0
    assert read_json(sweep / "1" / "vertex_status.json")["state"] == "FAILED"
    kept = {num: _snapshot(sweep / num) for num in ("0", "2")}

    fixed.touch()
    again = run_app("fixable.py", [*args, RESUME], tmp_path)
    assert again.returncode == 0, again.stderr

    first_run, new_run = _runs(sweep)
    # A display name is cut at 72 characters: the job is told by its number and first overrides.
    (only_task,) = _task_names(new_run)
    assert only_task.startswith("#1 +x=2 +fail_x=2 +fixed=")
    assert len(_task_names(first_run)) == 3
    for num, files in kept.items():
        assert _snapshot(sweep / num) == files, f"job {num} was touched"
    status = read_json(sweep / "1" / "vertex_status.json")
    assert status["state"] == "SUCCEEDED" and status["error"] is None
    assert "#0 : succeeded before, its result is reused" in again.stdout
    assert "#2 : succeeded before, its result is reused" in again.stdout
    assert "#1 : succeeded before" not in again.stdout
    # The sweep dir's status shows each job once, as it stands after both runs.
    shown = run_cli("status", str(sweep))
    assert sorted(table_rows(shown.stdout)) == ["0", "1", "2"]
    assert "3 jobs: 3/3 succeeded" in shown.stdout


def test_jobs_match_by_their_overrides_not_their_number(tmp_path: Path) -> None:
    sweep = tmp_path / "m"
    base = [LOCAL, f"hydra.sweep.dir={sweep}", "+fixed=none"]
    assert run_app("fixable.py", ["-m", "+x=1,2", *base], tmp_path).returncode == 0
    proc = run_app("fixable.py", ["-m", "+x=1,5", *base, RESUME], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert _task_names(_runs(sweep)[-1]) == ["#1 +x=5 +fixed=none"]
    assert (sweep / "1" / "artifact.txt").read_text() == "x=5\n"


def test_a_resumed_sweep_returns_what_the_first_run_returned_and_creates_no_run(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    sweep = tmp_path / "sw"
    overrides = [
        "+x=1,2,3",
        LOCAL,
        f"hydra.sweep.dir={sweep}",
        f"+hydra.launcher.env.PYTHONPATH={Path(__file__).parent}",
    ]
    first = multirun_returns(overrides)
    (run_dir,) = _runs(sweep)
    again = multirun_returns([*overrides, RESUME])
    assert _runs(sweep) == [run_dir], "no pipeline run when every job succeeded before"
    assert [r.return_value for r in again] == [r.return_value for r in first] == [10, 20, 30]
    for theirs, mine in zip(first, again):
        assert mine.overrides == theirs.overrides
        assert mine.cfg == theirs.cfg
        assert mine.working_dir == theirs.working_dir
        assert mine.status == theirs.status
        assert mine.hydra_cfg.hydra.runtime.output_dir == theirs.hydra_cfg.hydra.runtime.output_dir


def test_a_single_run_resumes_in_its_run_dir(tmp_path: Path) -> None:
    run_dir = tmp_path / "out"
    args = ["+x=4", "+fixed=none", LOCAL, f"hydra.run.dir={run_dir}"]
    assert run_app("fixable.py", args, tmp_path).returncode == 0
    kept = _snapshot(run_dir)
    proc = run_app("fixable.py", [*args, RESUME], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "no pipeline run is created" in proc.stdout
    assert len(_runs(run_dir)) == 1
    assert _snapshot(run_dir) == kept


def test_a_job_run_again_never_shows_its_earlier_outcome(tmp_path: Path) -> None:
    sweep = tmp_path / "m"
    base = ["-m", "+x=1", LOCAL, f"hydra.sweep.dir={sweep}"]
    assert run_app("faults.py", [*base, "+fault=none"], tmp_path).returncode == 0
    assert (sweep / "0" / "vertex_result.pkl").exists()
    # Run again (other overrides): its step is killed and hands back no result.
    assert run_app("faults.py", [*base, "+fault=kill", RESUME], tmp_path).returncode != 0
    status = read_json(sweep / "0" / "vertex_status.json")
    assert status["state"] == "FAILED" and "SIGKILL" in status["error"]
    assert not (sweep / "0" / "vertex_result.pkl").exists()
    # And so a later resume runs it again rather than reusing the first run's success.
    proc = run_app("faults.py", [*base, "+fault=none", RESUME], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(_runs(sweep)) == 3


def test_resume_on_vertex(fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path) -> None:
    sweep, fixed = tmp_path / "m", tmp_path / "fixed"
    args = [
        "-m",
        "+x=1,2",
        "+fail_x=2",
        f"+fixed={fixed}",
        VERTEX,
        f"hydra.sweep.dir={sweep}",
        *vertex_overrides(fake_vertex, gcs_bucket),
    ]
    assert run_app("fixable.py", args, tmp_path).returncode != 0
    kept = _snapshot(sweep / "0")
    fixed.touch()
    proc = run_app("fixable.py", [*args, RESUME], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(fake_vertex.jobs) == 2
    new_job = fake_vertex.jobs[_runs(sweep)[-1].name]
    assert len(new_job.body["pipelineSpec"]["root"]["dag"]["tasks"]) == 1
    assert _snapshot(sweep / "0") == kept
    assert read_json(sweep / "1" / "vertex_status.json")["state"] == "SUCCEEDED"
    assert (sweep / "1" / "artifact.txt").read_text() == "x=2\n"


def _optuna(sweep: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            str(EXAMPLE),
            "--config-name",
            "optuna",
            "-m",
            LOCAL,
            f"hydra.sweep.dir={sweep}",
            *extra,
        ],
        cwd=sweep.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_optuna_resumed_gets_the_kept_values(tmp_path: Path) -> None:
    sweep = tmp_path / "opt"
    assert _optuna(sweep).returncode == 0
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    runs = _runs(sweep)
    # As if the sweep had been interrupted before job 5 was collected.
    (sweep / "5" / "vertex_status.json").unlink()
    proc = _optuna(sweep, RESUME)
    assert proc.returncode == 0, proc.stderr
    (new_run,) = [run for run in _runs(sweep) if run not in runs]
    assert [name.split(" ")[0] for name in _task_names(new_run)] == ["#5"]
    assert yaml.safe_load((sweep / "optimization_results.yaml").read_text()) == best
