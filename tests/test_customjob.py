"""Machine types and Spot: each step a Vertex CustomJob made by google-cloud-pipeline-components.

The tests that compile CustomJob steps need the `customjob` extra; CI runs this file in a second
virtualenv that has it (.ci/run), since the extra moves google-cloud-aiplatform to 1.x.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest
import yaml
from apputil import APPS, read_json, run_app
from fake_vertex import GCPC_LAUNCHER, FakeVertex
from vertexutil import sweep_args

LOCAL = "hydra/launcher=vertex_pipeline_local"
SPOT_ON_HIGHMEM = ["hydra.launcher.machine_type=n1-highmem-8", "hydra.launcher.spot=true"]
ACCOUNT = "runner@test-proj.iam.gserviceaccount.com"


def needs_gcpc() -> None:
    pytest.importorskip(
        "google_cloud_pipeline_components", reason="needs the [customjob] extra (CI: .ci/run)"
    )


def _custom_job_tasks(spec_path: Path) -> List[Dict[str, Any]]:
    """Per task of the compiled spec: its display name, launcher command and CustomJob inputs."""
    spec = yaml.safe_load(spec_path.read_text())
    tasks = []
    for task in spec["root"]["dag"]["tasks"].values():
        component = spec["components"][task["componentRef"]["name"]]
        executor = spec["deploymentSpec"]["executors"][component["executorLabel"]]
        inputs = component["inputDefinitions"]["parameters"]
        tasks.append(
            {
                "name": task["taskInfo"]["name"],
                "command": executor["container"]["command"],
                "strategy": inputs["strategy"]["defaultValue"],
                "max_wait_duration": inputs["max_wait_duration"]["defaultValue"],
                "restart": inputs["restart_job_on_worker_restart"]["defaultValue"],
                "pool": inputs["worker_pool_specs"]["defaultValue"][0],
            }
        )
    return sorted(tasks, key=lambda t: t["name"])


def _assert_jobs_ran(sweep: Path) -> None:
    for num, x in ((0, 1), (1, 3)):
        job_dir = sweep / str(num)
        assert (job_dir / "artifact.txt").read_text() == f"x={x}\n"
        assert f"job with x={x} starts" in (job_dir / "flaky.log").read_text()
        assert read_json(job_dir / "vertex_status.json")["state"] == "SUCCEEDED"


def test_machine_type_and_spot_compile_into_custom_job_steps_that_run_locally(
    tmp_path: Path,
) -> None:
    needs_gcpc()
    sweep = tmp_path / "multirun"
    args = ["-m", "+x=1,3", LOCAL, f"hydra.sweep.dir={sweep}", *SPOT_ON_HIGHMEM]
    proc = run_app("flaky.py", args, tmp_path)
    assert proc.returncode == 0, proc.stderr

    _assert_jobs_ran(sweep)
    (spec_path,) = (sweep / "vertex_pipeline").glob("*/pipeline.yaml")
    tasks = _custom_job_tasks(spec_path)
    assert [t["name"] for t in tasks] == ["#0 +x=1", "#1 +x=3"]
    for task in tasks:
        assert GCPC_LAUNCHER in task["command"]
        assert task["strategy"] == "SPOT"
        assert task["pool"]["machine_spec"] == {"machine_type": "n1-highmem-8"}
        container = task["pool"]["container_spec"]
        assert (
            container["command"][-1] == "hydra_plugins.hydra_vertex_pipeline_launcher._step._entry"
        )
        # Env goes to the job's container: set on the task, it would reach only the launcher.
        assert {"name": "HYDRA_VERTEX_PIPELINE_STEP", "value": "1"} in container["env"]


def test_accelerator_disk_and_max_wait_reach_the_machine(tmp_path: Path) -> None:
    needs_gcpc()
    sweep = tmp_path / "multirun"
    settings = [
        "hydra.launcher.machine_type=a2-highgpu-1g",
        "hydra.launcher.resources.accelerator_type=NVIDIA_TESLA_A100",
        "hydra.launcher.boot_disk_size_gb=250",
        "hydra.launcher.max_wait_duration=1800",
        "hydra.launcher.restart_job_on_worker_restart=true",
    ]
    proc = run_app(
        "flaky.py", ["-m", "+x=1,3", LOCAL, f"hydra.sweep.dir={sweep}", *settings], tmp_path
    )
    assert proc.returncode == 0, proc.stderr

    _assert_jobs_ran(sweep)
    (spec_path,) = (sweep / "vertex_pipeline").glob("*/pipeline.yaml")
    for task in _custom_job_tasks(spec_path):
        assert task["pool"]["machine_spec"] == {
            "machine_type": "a2-highgpu-1g",
            "accelerator_type": "NVIDIA_TESLA_A100",
            "accelerator_count": 1,
        }
        assert task["pool"]["disk_spec"]["boot_disk_size_gb"] == 250
        # Vertex honours max_wait_duration only under FLEX_START scheduling.
        assert (task["strategy"], task["max_wait_duration"]) == ("FLEX_START", "1800s")
        assert task["restart"] is True


def test_a_custom_job_sweep_on_vertex_creates_spot_custom_jobs(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    needs_gcpc()
    sweep = tmp_path / "multirun"
    settings = [
        *SPOT_ON_HIGHMEM,
        f"hydra.launcher.service_account={ACCOUNT}",
        "hydra.launcher.network=projects/1/global/networks/vpc",
        "+hydra.launcher.labels.Team=ML Research",
        "+hydra.launcher.env.WANDB_MODE=offline",
    ]
    proc = run_app(
        "flaky.py", sweep_args(fake_vertex, gcs_bucket, sweep, "+x=1,3", *settings), tmp_path
    )
    assert proc.returncode == 0, proc.stderr

    _assert_jobs_ran(sweep)
    (run_id,) = fake_vertex.jobs
    created = sorted(fake_vertex.custom_jobs, key=lambda job: job["task"])
    assert [job["task"] for job in created] == ["#0 +x=1", "#1 +x=3"]
    for num, job in enumerate(created):
        assert job["display_name"] == f"{run_id}-{num}"
        spec = job["job_spec"]
        (pool,) = spec["worker_pool_specs"]
        assert pool["machine_spec"]["machine_type"] == "n1-highmem-8"
        assert spec["scheduling"]["strategy"] == "SPOT"
        # The job runs as the run's account, in its network: not as Vertex's service agent.
        assert spec["service_account"] == ACCOUNT
        assert spec["network"] == "projects/1/global/networks/vpc"
        assert job["labels"]["team"] == "ml-research"
        assert {"name": "WANDB_MODE", "value": "offline"} in pool["container_spec"]["env"]
        # The task's own inputs, nested in worker_pool_specs, were resolved too.
        args = pool["container_spec"]["args"]
        assert args[-4:-1] == ["--job", str(num), "--job-digest"] and "{{" not in args[-1]


def test_without_the_extra_the_setting_and_the_install_are_named(tmp_path: Path) -> None:
    sweep = tmp_path / "multirun"
    app = APPS / "flaky.py"
    # None in sys.modules makes `import google_cloud_pipeline_components` fail, as when it is
    # not installed; the app then runs as `python flaky.py ...` would.
    without_gcpc = (
        "import runpy, sys; sys.modules['google_cloud_pipeline_components'] = None; "
        f"sys.argv[0] = {str(app)!r}; runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    args = ["-m", "+x=1,3", LOCAL, f"hydra.sweep.dir={sweep}", "hydra.launcher.spot=true"]
    proc = subprocess.run(
        [sys.executable, "-c", without_gcpc, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode != 0
    assert "hydra.launcher.spot makes each step a Vertex CustomJob" in proc.stderr
    # Lines a user can run: the extra's own requirement (this package is on no index yet), or
    # the extra from a checkout.
    # As setup.py declares the extra (the order of its specifiers is the metadata's).
    assert re.search(r"`pip install 'google-cloud-pipeline-components[<>=0-9.,]*'`", proc.stderr)
    assert ">=2.20" in proc.stderr
    assert "`pip install '.[customjob]'` in a checkout of this repository" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (sweep / "0" / "artifact.txt").exists()


def test_each_job_gets_its_own_machine_type(tmp_path: Path) -> None:
    needs_gcpc()
    sweep = tmp_path / "multirun"
    args = [
        "-m",
        "model=s,l",
        f"hydra.sweep.dir={sweep}",
        # The machine decides CPUs and memory; the accelerator stays per model.
        "hydra.launcher.resources.cpu_limit=null",
        "hydra.launcher.resources.memory_limit=null",
        "hydra.launcher.machine_type=${model.machine}",
    ]
    proc = run_app("sized.py", args, tmp_path)
    assert proc.returncode == 0, proc.stderr

    (spec_path,) = sweep.glob("vertex_pipeline/*/pipeline.yaml")
    machines = {task["name"]: task["pool"]["machine_spec"] for task in _custom_job_tasks(spec_path)}
    assert machines["#0 model=s"]["machine_type"] == "n1-standard-2"
    assert "accelerator_type" not in machines["#0 model=s"]
    assert machines["#1 model=l"]["machine_type"] == "n1-highmem-8"
    assert machines["#1 model=l"]["accelerator_type"] == "NVIDIA_TESLA_T4"
    for num in ("0", "1"):
        assert read_json(sweep / num / "vertex_status.json")["state"] == "SUCCEEDED"
