"""hydra.launcher.dry_run=true: everything a launch checks, builds and compiles, and nothing
uploaded, created or run."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import yaml
from apputil import read_json, run_app
from fake_vertex import FakeVertex
from google.cloud import storage
from vertexutil import sweep_args

DRY_RUN = "hydra.launcher.dry_run=true"
NOTHING_DONE = "nothing was uploaded or created"


def _planned(record_dir: Path) -> Dict[str, Any]:
    """The dry run's plan, after checking that its compiled pipeline has one task per job."""
    (run_dir,) = (record_dir / "vertex_pipeline").iterdir()
    assert sorted(p.name for p in run_dir.iterdir()) == ["pipeline.yaml", "plan.json"]
    plan = read_json(run_dir / "plan.json")
    spec = yaml.safe_load((run_dir / "pipeline.yaml").read_text())
    tasks = spec["root"]["dag"]["tasks"]
    assert sorted(tasks) == sorted(job["task_name"] for job in plan["jobs"])
    for job in plan["jobs"]:
        assert tasks[job["task_name"]]["taskInfo"]["name"] == job["display_name"]
    return plan


def _sizes(plan: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Each job's overrides and step resources, in job order."""
    return [
        {"overrides": job["overrides"], **job["step_settings"]["resources"]} for job in plan["jobs"]
    ]


def test_a_dry_run_against_vertex_compiles_and_creates_nothing(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    buckets_before = {b.name for b in storage.Client().list_buckets()}
    sweep = tmp_path / "m"
    args = sweep_args(fake_vertex, gcs_bucket, sweep, "model=s,l", "seed=1")
    proc = run_app("sized.py", [*args, DRY_RUN], tmp_path)
    assert proc.returncode == 0, proc.stderr
    said = proc.stdout + proc.stderr
    assert NOTHING_DONE in said and "Staging to" not in said

    plan = _planned(sweep)
    assert plan["run_settings"]["backend"] == "vertex"
    assert plan["staging_uri"].startswith(f"gs://{gcs_bucket}/hydra/")
    assert _sizes(plan) == [
        {"overrides": ["model=s", "seed=1"], "cpu_limit": "1", "memory_limit": "2G",
         "accelerator_type": None, "accelerator_count": 1},
        {"overrides": ["model=l", "seed=1"], "cpu_limit": "8", "memory_limit": "32G",
         "accelerator_type": "NVIDIA_TESLA_T4", "accelerator_count": 1},
    ]  # fmt: skip
    staged = plan["staged"]
    for job in plan["jobs"]:
        assert job["staged"][f"jobs/{job['num']}/payload.pkl"] > 0
        assert set(job["staged"]) >= {
            f"jobs/{job['num']}/{f}" for f in ("config.yaml", "hydra.yaml")
        }
    assert staged["shared"]["shared.pkl"] > 0
    counted = [*staged["shared"].values(), *(s for j in plan["jobs"] for s in j["staged"].values())]
    assert staged["objects"] == len(counted) and staged["bytes"] == sum(counted)

    # Nothing created, nothing uploaded, no job run.
    assert set(fake_vertex.requests) <= {"get"} and not fake_vertex.jobs
    assert list(storage.Client().list_blobs(gcs_bucket)) == []
    assert {b.name for b in storage.Client().list_buckets()} == buckets_before
    assert sorted(p.name for p in sweep.iterdir()) == ["multirun.yaml", "vertex_pipeline"]


def test_a_dry_run_on_the_local_backend_runs_nothing(tmp_path: Path) -> None:
    board = tmp_path / "board"
    for args, record_dir in (
        (["-m", "model=s,m", "hydra.sweep.dir=m"], tmp_path / "m"),
        (["model=m", "hydra.run.dir=single"], tmp_path / "single"),
        # Even where a run without -m would run in this process.
        (
            ["model=m", "hydra.run.dir=here", "hydra.launcher.single_run=in_process"],
            tmp_path / "here",
        ),
    ):
        proc = run_app("sized.py", [*args, f"board={board}", DRY_RUN], tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert NOTHING_DONE in proc.stdout + proc.stderr
        plan = _planned(record_dir)
        assert plan["run_settings"]["backend"] == "local"
        assert [job["step_settings"]["resources"]["memory_limit"] for job in plan["jobs"]] == [
            "2G" if "model=s" in job["overrides"] else "16G" for job in plan["jobs"]
        ]
        assert "sized.log" not in [p.name for p in record_dir.rglob("*")], "no job ran"
    assert not board.exists(), "no job ran"
    assert not (tmp_path / "m" / "0").exists()
