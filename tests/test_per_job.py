"""Per-job step settings from each job's own config, and a cap on the steps running at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import pytest
import yaml
from apputil import read_json, run_app
from fake_vertex import FakeVertex
from vertexutil import sweep_args

APP = "sized.py"


def _spec(sweep: Path) -> Dict[str, Any]:
    (spec_path,) = sweep.glob("vertex_pipeline/*/pipeline.yaml")
    spec: Dict[str, Any] = yaml.safe_load(spec_path.read_text())
    return spec


def _tasks(spec: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """The DAG's tasks by their display name (the job's number and overrides)."""
    return {task["taskInfo"]["name"]: task for task in spec["root"]["dag"]["tasks"].values()}


def _resources(spec: Dict[str, Any], task: Dict[str, Any]) -> Dict[str, Any]:
    executor = spec["components"][task["componentRef"]["name"]]["executorLabel"]
    resources: Dict[str, Any] = spec["deploymentSpec"]["executors"][executor]["container"].get(
        "resources", {}
    )
    return resources


def _most_at_once(board: Path) -> int:
    spans = [read_json(p) for p in board.glob("*.json")]
    return max(
        sum(1 for other in spans if other["start"] <= span["start"] < other["end"])
        for span in spans
    )


def test_each_job_of_a_sweep_gets_the_resources_its_config_gives(tmp_path: Path) -> None:
    sweep = tmp_path / "m"
    proc = run_app(APP, ["-m", "model=s,m,l", f"hydra.sweep.dir={sweep}"], tmp_path)
    assert proc.returncode == 0, proc.stderr

    spec = _spec(sweep)
    tasks = _tasks(spec)
    shapes = {
        name: (res.get("resourceCpuLimit"), res.get("resourceMemoryLimit"), res.get("accelerator"))
        for name, res in ((name, _resources(spec, task)) for name, task in tasks.items())
    }
    t4 = {"type": "NVIDIA_TESLA_T4", "count": "1", "resourceType": "NVIDIA_TESLA_T4"}
    assert {name: shape[:2] for name, shape in shapes.items()} == {
        "#0 model=s": ("1", "2G"),
        "#1 model=m": ("4", "16G"),
        "#2 model=l": ("8", "32G"),
    }
    assert shapes["#0 model=s"][2] is None and shapes["#1 model=m"][2] is None
    assert t4.items() <= shapes["#2 model=l"][2].items()
    # Each step runs its own job, end to end.
    for num, size in enumerate("sml"):
        job_dir = sweep / str(num)
        assert read_json(job_dir / "vertex_status.json")["state"] == "SUCCEEDED"
        assert f"model={size} seed=0 starts" in (job_dir / "sized.log").read_text()
        config = yaml.safe_load((job_dir / ".hydra" / "config.yaml").read_text())
        assert config["model"]["name"] == size


def test_a_run_without_multirun_gets_its_configs_resources(tmp_path: Path) -> None:
    run_dir = tmp_path / "out"
    proc = run_app(APP, ["model=l", f"hydra.run.dir={run_dir}"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    spec = _spec(run_dir)
    (task,) = _tasks(spec).values()
    resources = _resources(spec, task)
    assert (resources["resourceCpuLimit"], resources["resourceMemoryLimit"]) == ("8", "32G")
    assert read_json(run_dir / "vertex_status.json")["state"] == "SUCCEEDED"


def test_a_job_that_changes_a_run_wide_setting_is_refused_before_staging(tmp_path: Path) -> None:
    sweep = tmp_path / "m"
    # Hydra allows one value for a hydra key; here it reads each job's own model.
    args = ["-m", "model=s,m", "+hydra.launcher.labels.size=${model.name}"]
    proc = run_app(APP, [*args, f"hydra.sweep.dir={sweep}"], tmp_path)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert (
        "Job #1 model=m sets hydra.launcher.labels={'size': 'm'} but the run uses "
        "{'size': 's'}: labels belongs to the whole run" in proc.stderr
    )
    assert not (sweep / "vertex_pipeline").exists()


def test_a_bad_quantity_from_a_jobs_config_is_named(tmp_path: Path) -> None:
    sweep = tmp_path / "m"
    # The primary config (model=s, 2G) is right; only job #1's is wrong.
    args = ["-m", "model=s", "model.memory=2G,12X", f"hydra.sweep.dir={sweep}"]
    proc = run_app(APP, args, tmp_path)
    assert proc.returncode != 0
    assert (
        "Job #1 model=s model.memory=12X: "
        "hydra.launcher.resources.memory_limit='12X': Invalid memory string"
    ) in proc.stderr
    assert not list(sweep.glob("vertex_pipeline/*/jobs"))


def test_every_job_with_a_wrong_setting_is_named_in_one_error(tmp_path: Path) -> None:
    sweep = tmp_path / "m"
    memories = ["2G", *(f"{n}X" for n in range(12))]
    args = ["-m", "model=s", f"model.memory={','.join(memories)}", f"hydra.sweep.dir={sweep}"]
    proc = run_app(APP, args, tmp_path)
    assert proc.returncode != 0
    said = proc.stdout + proc.stderr
    assert "12 jobs' settings need a fix:" in said and "Staging" not in said
    # The first ten, each with its job and value, then how many more.
    for num in range(1, 11):
        assert f"  - Job #{num} model=s model.memory={num - 1}X: " in said
    assert "  - ... and 2 more" in said and "Job #11" not in said
    assert not (sweep / "vertex_pipeline").exists()


def _assert_lanes(spec: Dict[str, Any], lanes: int) -> None:
    """Every task waits for at most one other, whatever its outcome, and no task is waited for
    by two: the DAG is `lanes` chains, so at most `lanes` steps can run at once."""
    tasks = spec["root"]["dag"]["tasks"]
    upstream = {key: task.get("dependentTasks", []) for key, task in tasks.items()}
    starters = [key for key, deps in upstream.items() if not deps]
    assert len(starters) == lanes
    assert all(len(deps) <= 1 for deps in upstream.values())
    waited_for = [dep for deps in upstream.values() for dep in deps]
    assert len(waited_for) == len(set(waited_for)) == len(tasks) - lanes
    for key, deps in upstream.items():
        if deps:
            assert tasks[key]["triggerPolicy"] == {"strategy": "ALL_UPSTREAM_TASKS_COMPLETED"}


def _six_jobs(board: Path, sweep: Path) -> List[str]:
    """Six one-second jobs; the first (seed=1) fails."""
    return [
        "-m",
        "seed=1,2,3,4,5,6",
        "fail_seed=1",
        "sleep=1",
        f"board={board}",
        "hydra.launcher.max_parallel=2",
        f"hydra.sweep.dir={sweep}",
    ]


def _assert_all_six_ran_two_at_a_time(sweep: Path, board: Path) -> None:
    names = sorted(_tasks(_spec(sweep)))
    assert [name.split(" ")[:2] for name in names] == [[f"#{n}", f"seed={n + 1}"] for n in range(6)]
    _assert_lanes(_spec(sweep), 2)
    assert len(list(board.glob("*.json"))) == 6
    assert _most_at_once(board) <= 2
    states = {num: read_json(sweep / str(num) / "vertex_status.json")["state"] for num in range(6)}
    assert states == {0: "FAILED", **{num: "SUCCEEDED" for num in range(1, 6)}}
    # Jobs 2 and 4 share the failed job's lane: they ran after it, all the same.
    failed_end = read_json(board / "0.json")["end"]
    assert all(read_json(board / f"{num}.json")["start"] >= failed_end for num in (2, 4))


@pytest.mark.parametrize(
    "local_cap", [[], ["hydra.launcher.local.max_parallel=6"]], ids=["alone", "with-local-cap"]
)
def test_max_parallel_caps_the_steps_of_a_run_on_the_local_backend(
    tmp_path: Path, local_cap: List[str]
) -> None:
    board, sweep = tmp_path / "board", tmp_path / "m"
    proc = run_app(APP, [*_six_jobs(board, sweep), *local_cap], tmp_path)
    assert proc.returncode != 0
    assert "seed=1 fails here" in proc.stderr
    _assert_all_six_ran_two_at_a_time(sweep, board)


def test_max_parallel_caps_the_steps_of_a_run_on_vertex(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    board, sweep = tmp_path / "board", tmp_path / "m"
    # The fake would run 4 at once; only the spec's lanes hold it to 2.
    assert fake_vertex.max_parallel > 2
    args = sweep_args(fake_vertex, gcs_bucket, sweep, *_six_jobs(board, sweep)[1:])
    proc = run_app(APP, args, tmp_path)
    assert proc.returncode != 0
    assert "seed=1 fails here" in proc.stderr
    _assert_all_six_ran_two_at_a_time(sweep, board)


def test_max_parallel_below_one_is_refused(tmp_path: Path) -> None:
    sweep = tmp_path / "m"
    args = ["-m", "seed=1,2", "hydra.launcher.max_parallel=0", f"hydra.sweep.dir={sweep}"]
    proc = run_app(APP, args, tmp_path)
    assert proc.returncode != 0
    assert "hydra.launcher.max_parallel=0: set it to 1 or more" in proc.stderr
    assert not (sweep / "vertex_pipeline").exists()
