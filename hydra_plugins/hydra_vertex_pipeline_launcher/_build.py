"""Build: one KFP v2 pipeline, one container task per job, compiled by kfp's own compiler."""
# No `from __future__ import annotations`: kfp reads the component's annotations as types.

import sys
from pathlib import Path
from typing import Any, Callable, Dict, List

from ._command import encode_overrides
from ._compose import ComposedJob
from ._customjob import CustomJobSteps, machine_shape, run_wide
from ._customjob import configure_task as configure_custom_job_task
from ._stage import StagedRun
from .config import IN_STEP_ENV, LauncherConfigError, VertexPipelineLauncherConf

REMOTE_MODULE = "hydra_plugins.hydra_vertex_pipeline_launcher._remote"
PLACEHOLDER_IMAGE = "python:3.11-slim"  # the local backend ignores the image


def build_pipeline(
    settings: VertexPipelineLauncherConf,
    pipeline_name: str,
    run_root_uri: str,
    jobs: List[ComposedJob],
    staged: StagedRun,
    spec_path: Path,
    job_settings: Dict[int, VertexPipelineLauncherConf],
) -> Dict[str, int]:
    """Compiles the pipeline into spec_path; returns each task's name in the DAG -> job num.

    settings: the run's; job_settings: each job's, which shape its step.
    """
    from kfp import compiler, dsl

    component = _job_component(settings, run_root_uri, staged)
    custom_jobs = _custom_job_steps(component, settings, jobs)
    run_id = run_root_uri.rstrip("/").rsplit("/", 1)[-1]
    task_jobs: Dict[str, int] = {}

    @dsl.pipeline(
        name=pipeline_name, description="Hydra jobs launched by hydra-vertex-pipeline-launcher"
    )
    def hydra_sweep() -> None:
        tasks = []
        for job in jobs:
            job_conf = job_settings[job.num]
            inputs = job_inputs(job, staged, job_conf)
            shape = machine_shape(job_conf)
            if shape is None:
                task = component(**inputs)
                _configure_job_task(task, job_conf, job.display_name)
            else:
                # The CustomJob's own name: inserted raw into a JSON payload, so never the
                # job's display name (quotes, backslashes).
                wrapped = custom_jobs.component_for(shape)
                task = wrapped(**inputs, display_name=f"{run_id}-{job.num}")
                configure_custom_job_task(task, job_conf, job.display_name)
            task_jobs[task.name] = job.num
            tasks.append(task)
        if settings.max_parallel:
            _chain_lanes(tasks, settings.max_parallel)

    spec_path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(hydra_sweep, str(spec_path))
    return task_jobs


def job_inputs(
    job: ComposedJob, staged: StagedRun, settings: VertexPipelineLauncherConf
) -> Dict[str, str]:
    """What makes a job's step its own: its task's input constants (settings: the job's)."""
    if staged.command is not None:
        overrides = encode_overrides(staged.command.job_overrides[job.num])
        return {"job_num": str(job.num), "overrides": overrides}
    return {"job_num": str(job.num), "job_digest": staged.job_digests[job.num]}


def _custom_job_steps(
    component: Any, settings: VertexPipelineLauncherConf, jobs: List[ComposedJob]
) -> CustomJobSteps:
    job_name = str(jobs[0].sweep_config.hydra.job.name) if jobs else ""
    return CustomJobSteps(component, run_wide(settings, job_name))


def _job_component(
    settings: VertexPipelineLauncherConf, run_root_uri: str, staged: StagedRun
) -> Any:
    from kfp import dsl

    image = settings.image or PLACEHOLDER_IMAGE
    fixed_args = [
        "--run-root",
        run_root_uri,
        "--log-upload-interval",
        str(settings.log_upload_interval),
        "--request-timeout",
        str(settings.request_timeout),
    ]
    if settings.timeout is not None:
        # Enforced by the step itself, so it holds on every backend.
        fixed_args += ["--timeout", str(settings.timeout)]
    command = ["python", "-m", REMOTE_MODULE]
    if staged.command is not None:
        app_command = ["--", *staged.command.args]

        @dsl.container_component
        def hydra_command_job(job_num: str, overrides: str) -> dsl.ContainerSpec:
            return dsl.ContainerSpec(
                image=image,
                command=command,
                args=[*fixed_args, "--execution", "command", "--job", job_num,
                      "--overrides", overrides, *app_command],
            )  # fmt: skip

        return hydra_command_job
    fixed_args += ["--shared-digest", staged.shared_digest, "--python", _python_version()]

    @dsl.container_component
    def hydra_job(job_num: str, job_digest: str) -> dsl.ContainerSpec:
        return dsl.ContainerSpec(
            image=image,
            command=command,
            args=[*fixed_args, "--job", job_num, "--job-digest", job_digest],
        )

    return hydra_job


def _python_version() -> str:
    """cloudpickle needs the same minor version in the step: the step checks it."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _configure_task(task: Any, settings: VertexPipelineLauncherConf, display_name: str) -> None:
    task.set_display_name(display_name)
    task.set_caching_options(settings.enable_caching)
    resources = settings.resources
    if resources.cpu_limit:
        _set("resources.cpu_limit", str(resources.cpu_limit), task.set_cpu_limit)
    if resources.memory_limit:
        _set("resources.memory_limit", str(resources.memory_limit), task.set_memory_limit)
    if resources.accelerator_type:
        task.set_accelerator_type(resources.accelerator_type)
        task.set_accelerator_limit(resources.accelerator_count)
    if settings.retries:
        task.set_retry(settings.retries)
    for name, value in settings.env.items():
        task.set_env_variable(name, str(value))
    task.set_env_variable(IN_STEP_ENV, "1")


def _configure_job_task(task: Any, settings: VertexPipelineLauncherConf, display_name: str) -> None:
    """_configure_task, its errors naming the job whose config gave the wrong value."""
    try:
        _configure_task(task, settings, display_name)
    except LauncherConfigError as e:
        raise LauncherConfigError(f"Job {display_name}: {e}") from e


def _set(setting: str, value: str, apply: Callable[[str], Any]) -> None:
    try:
        apply(value)
    except ValueError as e:  # kfp checks Kubernetes quantities
        raise LauncherConfigError(f"hydra.launcher.{setting}={value!r}: {e}") from e


def _chain_lanes(tasks: List[Any], lanes: int) -> None:
    """At most `lanes` steps at once, each job still its own task: task i starts once task
    i - lanes has ended, whatever its outcome (a failed job does not stop its lane)."""
    for earlier, task in zip(tasks, tasks[lanes:]):
        task.after(earlier)
        _ignore_upstream_failure(task)


def _ignore_upstream_failure(task: Any) -> None:
    """kfp's ignore_upstream_failure(), which compiles to the trigger policy
    ALL_UPSTREAM_TASKS_COMPLETED."""
    try:
        task.ignore_upstream_failure()
    except KeyError:
        # kfp <= 2.17.3 looks up every input of the component, also the optional ones a task
        # does not pass (components wrapped as CustomJobs have many): set what it would have
        # set. The compiled spec is the same.
        task._ignore_upstream_failure_tag = True
