"""The compiled pipeline of a sweep: one task per job, each its job's own, at any scale.

kfp compiles one task per step shape; every job's task is built from its shape's. These tests
read the spec as Vertex, the local backend and kfp read it.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml
from kfp import components
from omegaconf import OmegaConf
from test_customjob import needs_gcpc

from hydra_plugins.hydra_vertex_pipeline_launcher._backends._spec import read_spec, step_container
from hydra_plugins.hydra_vertex_pipeline_launcher._launch._build import build_pipeline, job_inputs
from hydra_plugins.hydra_vertex_pipeline_launcher._launch._compose import ComposedJob, display_name
from hydra_plugins.hydra_vertex_pipeline_launcher._launch._stage import StagedRun
from hydra_plugins.hydra_vertex_pipeline_launcher.config import (
    ResourcesConf,
    VertexPipelineLauncherConf,
    settings_from,
)

RUN_ROOT = "gs://bucket/hydra/sweep-run-7"
Spec = Dict[str, Any]


def _jobs(count: int) -> List[ComposedJob]:
    config = OmegaConf.create({"hydra": {"job": {"name": "sweep"}}})
    jobs = []
    for num in range(count):
        # Quotes and backslashes too: a display name is the job's, whatever it holds.
        overrides = [f"seed={num}", f"+tag='a \"b\\\\{num % 3}'"]
        jobs.append(
            ComposedJob(num, overrides, config, Path(f"/out/{num}"), display_name(num, overrides))
        )
    return jobs


def _staged(jobs: List[ComposedJob]) -> StagedRun:
    return StagedRun("f" * 64, {job.num: f"{job.num * 7919:064x}" for job in jobs}, {})


def _build(
    tmp_path: Path,
    jobs: List[ComposedJob],
    settings: VertexPipelineLauncherConf,
    job_settings: Optional[Dict[int, VertexPipelineLauncherConf]] = None,
) -> tuple[Spec, Dict[str, int]]:
    spec_path = tmp_path / "pipeline.yaml"
    per_job = job_settings or {job.num: settings for job in jobs}
    task_jobs = build_pipeline(settings, "sweep", RUN_ROOT, jobs, _staged(jobs), spec_path, per_job)
    spec: Spec = yaml.safe_load(spec_path.read_text())
    return spec, task_jobs


def _executor(spec: Spec, task: Dict[str, Any]) -> Dict[str, Any]:
    component = spec["components"][task["componentRef"]["name"]]
    container: Dict[str, Any] = spec["deploymentSpec"]["executors"][component["executorLabel"]][
        "container"
    ]
    return step_container(component, container)


def _constants(task: Dict[str, Any]) -> Dict[str, str]:
    parameters = task["inputs"]["parameters"]
    return {name: value["runtimeValue"]["constant"] for name, value in parameters.items()}


def test_every_job_of_a_large_sweep_is_its_own_task_named_after_it(tmp_path: Path) -> None:
    jobs = _jobs(1500)
    settings = settings_from({"image": "img:1"})
    spec, task_jobs = _build(tmp_path, jobs, settings)

    tasks = spec["root"]["dag"]["tasks"]
    assert len(tasks) == 1500 and sorted(task_jobs.values()) == list(range(1500))
    # The task's key names its job too, as the status files and the console show it.
    assert set(task_jobs) == set(tasks) == {f"hydra-job-{job.num}" for job in jobs}
    staged = _staged(jobs)
    for key, num in task_jobs.items():
        job = jobs[num]
        assert tasks[key]["taskInfo"]["name"] == job.display_name
        assert _constants(tasks[key]) == job_inputs(job, staged, settings)
        assert "dependentTasks" not in tasks[key]
    # Steps of the same settings share one component and executor: the spec grows by a task.
    assert len(spec["components"]) == len(spec["deploymentSpec"]["executors"]) == 1
    (executor,) = spec["deploymentSpec"]["executors"].values()
    assert executor["container"]["image"] == "img:1"
    assert executor["container"]["args"][-4:] == [
        "--job",
        "{{$.inputs.parameters['job_num']}}",
        "--job-digest",
        "{{$.inputs.parameters['job_digest']}}",
    ]


def test_the_spec_reads_the_same_as_json_and_as_yaml_whatever_its_names_hold(
    tmp_path: Path,
) -> None:
    # Characters YAML's readers refuse raw (DEL, C1 controls, U+FFFE) or read as line breaks
    # (NEL, U+2028), an astral one, a tab: in a job's display name, as an override can hold them.
    odd = ["😀", "\x85", "\u2028", "\x7f", "\x90", "\t", "\ufffe", "é"]
    config = OmegaConf.create({"hydra": {"job": {"name": "sweep"}}})
    jobs = []
    for num, char in enumerate(odd):
        overrides = [f"+tag='a{char}b'"]
        jobs.append(
            ComposedJob(num, overrides, config, Path(f"/out/{num}"), display_name(num, overrides))
        )
    _build(tmp_path, jobs, settings_from({"image": "img:1"}))

    text = (tmp_path / "pipeline.yaml").read_text(encoding="utf-8")
    spec = json.loads(text)
    assert yaml.safe_load(text) == yaml.load(text, Loader=yaml.CSafeLoader) == spec
    assert read_spec(tmp_path / "pipeline.yaml") == spec
    names = {task["taskInfo"]["name"] for task in spec["root"]["dag"]["tasks"].values()}
    assert names == {job.display_name for job in jobs}


def _sized(settings: VertexPipelineLauncherConf, num: int) -> VertexPipelineLauncherConf:
    """Job num's settings: three sizes in turn, every fourth job retried with its own env, and
    every other cached (which its task says, not its container)."""
    cpu = ("1", "2", "4")[num % 3]
    retried = num % 4 == 0
    return dataclasses.replace(
        settings,
        resources=ResourcesConf(cpu_limit=cpu, memory_limit=f"{cpu}G"),
        retries=2 if retried else 0,
        env={"SIZE": cpu, **({"RETRIED": "yes"} if retried else {})},
        enable_caching=num % 2 == 1,
    )


def test_jobs_of_distinct_settings_each_get_theirs_and_lanes_cross_them(tmp_path: Path) -> None:
    jobs = _jobs(40)
    settings = settings_from({"image": "img:1", "max_parallel": 3})
    per_job = {job.num: _sized(settings, job.num) for job in jobs}
    spec, task_jobs = _build(tmp_path, jobs, settings, per_job)

    tasks = spec["root"]["dag"]["tasks"]
    key_of = {num: key for key, num in task_jobs.items()}
    for job in jobs:
        task = tasks[key_of[job.num]]
        own = per_job[job.num]
        container = _executor(spec, task)
        assert task["taskInfo"]["name"] == job.display_name
        assert container["resources"]["resourceCpuLimit"] == own.resources.cpu_limit
        assert container["resources"]["resourceMemoryLimit"] == own.resources.memory_limit
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env == {**own.env, "HYDRA_VERTEX_PIPELINE_STEP": "1"}
        assert int(task.get("retryPolicy", {}).get("maxRetryCount", 0)) == own.retries
        assert task["cachingOptions"].get("enableCache", False) == own.enable_caching
        # At most 3 at once: each job after the one 3 before it, whatever their settings.
        if job.num < 3:
            assert "dependentTasks" not in task and "triggerPolicy" not in task
        else:
            assert task["dependentTasks"] == [key_of[job.num - 3]]
            assert task["triggerPolicy"] == {"strategy": "ALL_UPSTREAM_TASKS_COMPLETED"}
    # One executor per distinct container (size x env), not per job nor per task setting.
    assert len(spec["deploymentSpec"]["executors"]) == len(spec["components"]) == 6


def test_many_distinct_shapes_keep_each_their_own_step(tmp_path: Path) -> None:
    jobs = _jobs(130)  # more shapes than kfp compiles in one pipeline
    settings = settings_from({"image": "img:1"})
    per_job = {job.num: dataclasses.replace(settings, env={"SEED": str(job.num)}) for job in jobs}
    spec, task_jobs = _build(tmp_path, jobs, settings, per_job)

    tasks = spec["root"]["dag"]["tasks"]
    assert len(spec["deploymentSpec"]["executors"]) == 130
    for key, num in task_jobs.items():
        env = {e["name"]: e["value"] for e in _executor(spec, tasks[key])["env"]}
        assert env["SEED"] == str(num)


def test_kfp_loads_the_compiled_sweep_back(tmp_path: Path) -> None:
    jobs = _jobs(12)
    settings = settings_from({"image": "img:1", "max_parallel": 5, "retries": 1})
    per_job = {job.num: _sized(settings, job.num) for job in jobs}
    _build(tmp_path, jobs, settings, per_job)

    loaded = components.load_component_from_file(str(tmp_path / "pipeline.yaml"))
    tasks = loaded.pipeline_spec.root.dag.tasks
    assert sorted(task.task_info.name for task in tasks.values()) == sorted(
        job.display_name for job in jobs
    )
    assert tasks["hydra-job-7"].dependent_tasks == ["hydra-job-2"]


def test_custom_job_shapes_each_wrap_their_machine(tmp_path: Path) -> None:
    needs_gcpc()
    jobs = _jobs(9)
    settings = settings_from({"image": "img:1", "machine_type": "n1-standard-4", "max_parallel": 2})
    machines = ("n1-standard-4", "n1-highmem-8", "a2-highgpu-1g")
    per_job = {
        job.num: dataclasses.replace(settings, machine_type=machines[job.num % 3]) for job in jobs
    }
    spec, task_jobs = _build(tmp_path, jobs, settings, per_job)

    tasks = spec["root"]["dag"]["tasks"]
    assert len(spec["components"]) == 3
    for key, num in task_jobs.items():
        task = tasks[key]
        component = spec["components"][task["componentRef"]["name"]]
        pools = component["inputDefinitions"]["parameters"]["worker_pool_specs"]["defaultValue"]
        assert pools[0]["machine_spec"]["machine_type"] == machines[num % 3]
        assert task["taskInfo"]["name"] == jobs[num].display_name
        assert _constants(task)["display_name"] == f"sweep-run-7-{num}"
        assert _constants(task)["job_num"] == str(num)
        if num >= 2:
            assert task["dependentTasks"] == [f"hydra-job-{num - 2}"]


# A fresh interpreter: this one imported kfp in full (kfp.components, above).
BUILD_IN_FRESH_PROCESS = """
import os, sys
from pathlib import Path
from omegaconf import OmegaConf
from hydra_plugins.hydra_vertex_pipeline_launcher._launch._build import build_pipeline
from hydra_plugins.hydra_vertex_pipeline_launcher._launch._compose import ComposedJob
from hydra_plugins.hydra_vertex_pipeline_launcher._launch._stage import StagedRun
from hydra_plugins.hydra_vertex_pipeline_launcher.config import settings_from

config = OmegaConf.create({"hydra": {"job": {"name": "sweep"}}})
jobs = [ComposedJob(num, [f"x={num}"], config, Path(f"/out/{num}"), f"#{num}") for num in range(3)]
staged = StagedRun("f" * 64, {job.num: f"{job.num:064x}" for job in jobs}, {})
settings = settings_from({"image": "img:1"})
spec_path = Path(sys.argv[1])
per_job = {job.num: settings for job in jobs}
build_pipeline(settings, "sweep", "gs://b/r", jobs, staged, spec_path, per_job)
print("client imported by the build:", "kubernetes" in sys.modules or "kfp.client" in sys.modules)
print("env left:", "_KFP_RUNTIME" in os.environ)
from kfp import Client
import kfp
print("later:", Client.__name__, kfp.components.__name__, kfp.dsl.__name__)
"""


def test_the_build_leaves_kfps_api_client_unimported_until_used(tmp_path: Path) -> None:
    """kfp's API client (kubernetes & co.) was most of the launcher's peak memory."""
    spec_path = tmp_path / "pipeline.yaml"
    command = [sys.executable, "-c", BUILD_IN_FRESH_PROCESS, str(spec_path)]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [
        "client imported by the build: False",
        "env left: False",
        "later: Client kfp.components kfp.dsl",
    ]
    assert len(yaml.safe_load(spec_path.read_text())["root"]["dag"]["tasks"]) == 3
