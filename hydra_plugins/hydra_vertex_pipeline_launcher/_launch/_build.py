"""Build: one KFP v2 pipeline, one container task per job, compiled by kfp's own compiler.

Jobs differ only by their input constants, display name, step settings and place in the lanes
(`job_inputs` is the one source of a job's inputs). So kfp compiles one task per distinct step
*shape* (a job's step settings), and every job's task is its shape's compiled task with the
job's own key, display name, input constants and upstream task. The jobs of a shape share its
component and executor: the spec grows by one small task per job, and kfp's task naming and
compiling, quadratic in the tasks of one pipeline, only ever see a few shapes at once.
"""
# No `from __future__ import annotations`: kfp reads the component's annotations as types.

import copy
import dataclasses
import functools
import gc
import importlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar, cast

from ..config import IN_STEP_ENV, LauncherConfigError, VertexPipelineLauncherConf
from ._compose import ComposedJob
from ._customjob import CustomJobSteps, machine_shape, run_wide
from ._customjob import configure_task as configure_custom_job_task
from ._stage import StagedRun

REMOTE_MODULE = "hydra_plugins.hydra_vertex_pipeline_launcher._step._entry"
PLACEHOLDER_IMAGE = "python:3.11-slim"  # the local backend ignores the image
DESCRIPTION = "Hydra jobs launched by hydra-vertex-pipeline-launcher"
TASK_PREFIX = "hydra-job"
# Vertex's limit on a CustomJob's display name.
CUSTOM_JOB_NAME_LIMIT = 128
# Shapes compiled by one kfp pipeline: kfp's compile time grows with the square of its tasks.
SHAPES_PER_COMPILE = 50
# Set to "true", kfp's package skips importing its API client (kfp's own step containers set it).
KFP_RUNTIME_ENV = "_KFP_RUNTIME"

Task = Dict[str, Any]  # one task of the compiled spec's DAG, as its file holds it
# Characters YAML readers refuse (DEL, C1 controls, U+FFFE/FFFF, lone surrogates) or read as line
# breaks (NEL, U+2028/2029) when raw: the spec holds them as JSON escapes, which YAML reads too
# (astral characters stay raw: YAML does not pair JSON's surrogate escapes).
YAML_UNREADABLE = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")
# A shape's task names in the pipeline kfp compiled: its task alone, and the one after it.
TaskNames = Tuple[str, Optional[str]]
BuildFunction = TypeVar("BuildFunction", bound=Callable[..., Any])


@dataclasses.dataclass
class _Shape:
    """Jobs whose steps kfp compiles alike: the same step settings."""

    settings: VertexPipelineLauncherConf
    jobs: List[ComposedJob]
    # Whether one of its jobs waits for another's task (lanes).
    follows: bool = False
    # Compiled by kfp: the shape's task alone, and (with lanes) started after another task.
    head: Optional[Task] = None
    follower: Optional[Task] = None


@dataclasses.dataclass(frozen=True)
class _Steps:
    """What every shape's step is made of."""

    component: Any
    custom_jobs: CustomJobSteps
    staged: StagedRun
    run_id: str


def _without_cycle_collection(build: BuildFunction) -> BuildFunction:
    """The build makes some ten dicts a job, none in a cycle; the collector's passes over them
    and over the composed configs already in memory only cost time (a third of the build of
    3000 jobs, growing faster than the jobs)."""

    @functools.wraps(build)
    def build_without_cycle_collection(*args: Any, **kwargs: Any) -> Any:
        enabled = gc.isenabled()
        gc.disable()
        try:
            return build(*args, **kwargs)
        finally:
            if enabled:
                gc.enable()

    return cast(BuildFunction, build_without_cycle_collection)


@_without_cycle_collection
def build_pipeline(
    settings: VertexPipelineLauncherConf,
    pipeline_name: str,
    run_root_uri: str,
    jobs: List[ComposedJob],
    staged: StagedRun,
    spec_path: Path,
    job_settings: Dict[int, VertexPipelineLauncherConf],
    result_key: str = "",
) -> Dict[str, int]:
    """Compiles the pipeline into spec_path; returns each task's name in the DAG -> job num.

    settings: the run's; job_settings: each job's, which shape its step; result_key: the key
    its steps seal their results with (in the spec, never in the staging root).
    """
    _import_kfp_without_client()
    component = _job_component(settings, run_root_uri, staged, result_key)
    steps = _Steps(
        component=component,
        custom_jobs=_custom_job_steps(component, settings, jobs),
        staged=staged,
        run_id=run_root_uri.rstrip("/").rsplit("/", 1)[-1],
    )
    lanes = settings.max_parallel or 0
    shapes = _shapes(jobs, job_settings, lanes)
    spec = _compile_shapes(list(shapes.values()), steps, pipeline_name)
    shape_of = {job.num: shape for shape in shapes.values() for job in shape.jobs}
    keys = [f"{TASK_PREFIX}-{job.num}" for job in jobs]
    tasks: Dict[str, Task] = {}
    for index, job in enumerate(jobs):
        upstream = _lane_upstream(index, lanes)
        upstream_key = None if upstream is None else keys[upstream]
        inputs = _task_inputs(job, shape_of[job.num].settings, steps)
        tasks[keys[index]] = _job_task(shape_of[job.num], job.display_name, inputs, upstream_key)
    spec["root"]["dag"]["tasks"] = tasks
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    _write_spec(spec, spec_path)
    return {key: job.num for key, job in zip(keys, jobs)}


def _import_kfp_without_client() -> None:
    """Imports kfp's package without its API client (kubernetes, kfp_server_api, requests: some
    1200 modules, ~50 MiB of the launcher's peak memory), which building never uses; kfp.dsl and
    the compiler are imported in full. `kfp.Client` still works in this process: imported on
    first use."""
    if "kfp" in sys.modules:
        return
    saved = os.environ.get(KFP_RUNTIME_ENV)
    os.environ[KFP_RUNTIME_ENV] = "true"
    try:
        kfp = importlib.import_module("kfp")
    finally:
        if saved is None:
            del os.environ[KFP_RUNTIME_ENV]
        else:
            os.environ[KFP_RUNTIME_ENV] = saved
    kfp.__getattr__ = _kfp_client_on_first_use  # type: ignore[attr-defined]


def _kfp_client_on_first_use(name: str) -> Any:
    """What kfp's package would have imported itself (PEP 562 module __getattr__)."""
    if name == "Client":
        return importlib.import_module("kfp.client").Client
    if name in ("components", "dsl"):
        return importlib.import_module(f"kfp.{name}")
    raise AttributeError(f"module 'kfp' has no attribute {name!r}")


def _shapes(
    jobs: List[ComposedJob], job_settings: Dict[int, VertexPipelineLauncherConf], lanes: int
) -> Dict[str, _Shape]:
    """Jobs by shape, in the order of their first job. Two jobs whose settings differ in any
    field are two shapes, so a new step setting needs nothing here."""
    shapes: Dict[str, _Shape] = {}
    for index, job in enumerate(jobs):
        conf = job_settings[job.num]
        shape = shapes.setdefault(repr(conf), _Shape(conf, []))
        shape.jobs.append(job)
        shape.follows = shape.follows or _lane_upstream(index, lanes) is not None
    return shapes


def _lane_upstream(index: int, lanes: int) -> Optional[int]:
    """The job whose end the index-th job waits for, with `lanes` steps at once (0: no cap)."""
    return index - lanes if lanes and index >= lanes else None


def _task_inputs(
    job: ComposedJob, settings: VertexPipelineLauncherConf, steps: _Steps
) -> Dict[str, str]:
    inputs = job_inputs(job, steps.staged, settings)
    if machine_shape(settings) is not None:
        inputs["display_name"] = custom_job_display_name(steps.run_id, job.num)
    return inputs


def custom_job_display_name(run_id: str, num: int) -> str:
    """The CustomJob's own name, `<run id>-<num>`, cut to Vertex's 128 characters from the run
    id's end. Inserted raw into a JSON payload, so never the job's display name (quotes,
    backslashes)."""
    suffix = f"-{num}"
    return run_id[: CUSTOM_JOB_NAME_LIMIT - len(suffix)] + suffix


def _compile_shapes(shapes: List[_Shape], steps: _Steps, name: str) -> Dict[str, Any]:
    """kfp compiles each shape's task(s), SHAPES_PER_COMPILE shapes per pipeline; returns the
    merged spec (its components and executors, no tasks) and fills each shape's templates."""
    from google.protobuf import json_format

    spec: Dict[str, Any] = {}
    for first in range(0, len(shapes), SHAPES_PER_COMPILE):
        batch = shapes[first : first + SHAPES_PER_COMPILE]
        pipeline, names = _shapes_pipeline(batch, first, steps, name)
        compiled = json_format.MessageToDict(pipeline.pipeline_spec)
        _take_templates(batch, names, compiled)
        if spec:
            spec["components"].update(compiled["components"])
            spec["deploymentSpec"]["executors"].update(compiled["deploymentSpec"]["executors"])
        else:
            spec = compiled
    _share_identical_components(spec, shapes)
    return spec


def _shapes_pipeline(
    shapes: List[_Shape], first: int, steps: _Steps, name: str
) -> Tuple[Any, List[TaskNames]]:
    """One kfp pipeline with, per shape, its first job's task and, if a job of the shape
    follows another in a lane, a second task after it. Each shape's component has a name of
    its own: kfp names tasks, components and executors after it, unique across the pipelines
    of one build."""
    from kfp import dsl

    names: List[TaskNames] = []

    @dsl.pipeline(name=name, description=DESCRIPTION)
    def hydra_sweep() -> None:
        for number, shape in enumerate(shapes, start=first):
            component = _component_for(shape, steps, f"{TASK_PREFIX}-s{number}")
            head = _shape_task(component, shape, steps)
            follower = None
            if shape.follows:
                follower = _shape_task(component, shape, steps)
                _chain_lanes([head, follower], 1)
            names.append((head.name, follower.name if follower else None))

    return hydra_sweep, names


def _component_for(shape: _Shape, steps: _Steps, name: str) -> Any:
    custom_job = machine_shape(shape.settings)
    component = steps.component
    if custom_job is not None:
        component = steps.custom_jobs.component_for(custom_job)
    return _renamed(component, name)


def _renamed(component: Any, name: str) -> Any:
    renamed = copy.copy(component)
    renamed.component_spec = dataclasses.replace(component.component_spec, name=name)
    renamed.name = name
    return renamed


def _shape_task(component: Any, shape: _Shape, steps: _Steps) -> Any:
    job = shape.jobs[0]
    task = component(**_task_inputs(job, shape.settings, steps))
    if machine_shape(shape.settings) is None:
        _configure_job_task(task, shape.settings, job.display_name)
    else:
        configure_custom_job_task(task, shape.settings, job.display_name)
    return task


def _take_templates(shapes: List[_Shape], names: List[TaskNames], compiled: Dict[str, Any]) -> None:
    tasks = compiled["root"]["dag"].pop("tasks")
    for shape, (head_name, follower_name) in zip(shapes, names):
        shape.head = tasks[head_name]
        if follower_name is not None:
            shape.follower = tasks[follower_name]
            # Its upstream task is replaced by each job's own: kfp must have compiled just one.
            assert shape.follower["dependentTasks"] == [head_name], shape.follower


def _share_identical_components(spec: Dict[str, Any], shapes: List[_Shape]) -> None:
    """kfp emits a component and executor per task; tasks of equal ones share the first."""
    components = spec["components"]
    executors = spec["deploymentSpec"]["executors"]
    first_of: Dict[str, str] = {}
    same_as: Dict[str, str] = {}
    for name, component in sorted(components.items()):
        label = component["executorLabel"]
        content = {**component, "executorLabel": None, "executor": executors[label]}
        first = first_of.setdefault(json.dumps(content, sort_keys=True), name)
        if first != name:
            same_as[name] = first
            del components[name], executors[label]
    for shape in shapes:
        for template in (shape.head, shape.follower):
            if template is not None:
                ref = template["componentRef"]
                ref["name"] = same_as.get(ref["name"], ref["name"])


def _job_task(
    shape: _Shape, display_name: str, inputs: Dict[str, str], upstream: Optional[str]
) -> Task:
    template = shape.head if upstream is None else shape.follower
    assert template is not None
    task: Task = copy.deepcopy(template)
    task["taskInfo"]["name"] = display_name
    parameters = task["inputs"]["parameters"]
    if parameters.keys() != inputs.keys():
        raise ValueError(
            f"Job {display_name} has the inputs {sorted(inputs)}, its shape's task "
            f"{sorted(parameters)}: job_inputs must give every job the same inputs"
        )
    for input_name, value in inputs.items():
        parameters[input_name]["runtimeValue"]["constant"] = value
    if upstream is not None:
        task["dependentTasks"] = [upstream]
    return task


def _write_spec(spec: Dict[str, Any], spec_path: Path) -> None:
    """JSON, which YAML's readers (kfp's, aiplatform's) read as the same document, after kfp's IR
    schema accepted it: a 10 000-job spec is written in 0.3 s and read back in 0.06 s, where
    libyaml took 2.3 s and 4 s (the launcher reads it to submit, and its report to describe the
    machines). A key a line, unindented: nesting indentation costs some 200 bytes a job."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())
    text = json.dumps(spec, indent=0, sort_keys=True, ensure_ascii=False)
    spec_path.write_text(YAML_UNREADABLE.sub(_json_escape, text) + "\n", encoding="utf-8")


def _json_escape(found: "re.Match[str]") -> str:
    return f"\\u{ord(found.group()):04x}"


def job_inputs(
    job: ComposedJob, staged: StagedRun, settings: VertexPipelineLauncherConf
) -> Dict[str, str]:
    """The input constants of a job's task: the only per-job values of its step's command
    (settings: the job's). Its number and the digest of what was staged for it (its payload, or
    in command mode its overrides), whatever their size: the spec grows by a few hundred bytes
    a job."""
    return {"job_num": str(job.num), "job_digest": staged.job_digests[job.num]}


def _custom_job_steps(
    component: Any, settings: VertexPipelineLauncherConf, jobs: List[ComposedJob]
) -> CustomJobSteps:
    job_name = jobs[0].job_name if jobs else ""
    return CustomJobSteps(component, run_wide(settings, job_name))


def _job_component(
    settings: VertexPipelineLauncherConf, run_root_uri: str, staged: StagedRun, result_key: str
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
        "--result-key",
        result_key,
    ]
    if settings.timeout is not None:
        # Enforced by the step itself, so it holds on every backend.
        fixed_args += ["--timeout", str(settings.timeout)]
    for name, version in sorted(settings.secret_env.items()):
        # The secret's name: the step reads its value itself.
        fixed_args += ["--secret-env", f"{name}={version}"]
    if settings.secret_env:
        fixed_args += ["--secret-manager-endpoint", settings.secret_manager_endpoint]
    command = ["python", "-m", REMOTE_MODULE]
    _refuse_placeholders(fixed_args)
    if staged.command is not None:
        if staged.command.in_container:
            fixed_args.append("--watch-working-dir")
        app_command = ["--", *staged.command.args]
        _refuse_placeholders(app_command)

        @dsl.container_component
        def hydra_command_job(job_num: str, job_digest: str) -> dsl.ContainerSpec:
            return dsl.ContainerSpec(
                image=image,
                command=command,
                args=[*fixed_args, "--execution", "command", "--job", job_num,
                      "--job-digest", job_digest, *app_command],
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


def _refuse_placeholders(args: List[str]) -> None:
    """KFP placeholders (`{{$.inputs...}}`) in a step's arguments are filled in by every backend,
    so a path holding that text would reach the step changed: refused before anything is
    uploaded, naming it."""
    for arg in args:
        if "{{$" in arg:
            raise LauncherConfigError(
                f"{arg!r} holds the text '{{{{$', which Vertex (and the local backend) read as a "
                "pipeline placeholder and replace: rename that folder (hydra.sweep.dir, "
                "hydra.launcher.staging_root, --config-dir) or setting."
            )


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
