"""run_pipeline (components.py): a hand-built kfp pipeline through the launcher's own backends,
run record and watcher, the way a sweep's pipeline goes through them."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from .._backends._base import RunContext, State, TaskStatus
from .._backends._choice import make_backend
from .._backends._local import PIPELINE_ROOT
from .._backends._spec import output_artifacts, read_spec, read_steps, task_display_names
from .._shared._storage import Storage, open_storage
from ..config import (
    RUN_DIR_KEY,
    LauncherConfigError,
    VertexPipelineLauncherConf,
    VertexPipelineLocalLauncherConf,
    validate,
)
from ._artifacts import fetch_artifacts
from ._flow import new_run, submit_and_watch
from ._record import attach_command
from ._watch import Outcome, WatchedJob

log = logging.getLogger(__name__)

# Settings that shape the launcher's own steps; a hand-built pipeline's tasks carry their own.
STEP_SETTINGS = {
    "image": "each component names its image: hydra_component(name, image, ...)",
    "resources": "set them on the task: task.set_cpu_limit(...), set_memory_limit(...), ...",
    "retries": "set them on the task: task.set_retry(...)",
    "enable_caching": "set it on the task: task.set_caching_options(...)",
    "env": "set it on the task: task.set_env_variable(...)",
    "timeout": "a time limit of the launcher's own step; give the app its own",
    "max_parallel": "order the tasks with task.after(...)",
    "machine_type": "wrap the component with google-cloud-pipeline-components' "
    "create_custom_training_job_from_component",
    "boot_disk_size_gb": "a CustomJob setting: see machine_type",
    "spot": "a CustomJob setting: see machine_type",
    "max_wait_duration": "a CustomJob setting: see machine_type",
    "restart_job_on_worker_restart": "a CustomJob setting: see machine_type",
    "resume": "a pipeline run always runs every task",
    "execution": "each component runs its own command: hydra_component(name, image, command)",
    "command": "each component runs its own command: hydra_component(name, image, command)",
}
TASKS_DIR = "tasks"
# In a task's dir, when its console output is not on this machine: where it is.
LOGS_NOTE_FILE = "logs.txt"
# The component output that is each step's Hydra output dir (hydra_component).
RUN_DIR_OUTPUT = RUN_DIR_KEY.replace(".", "_")


@dataclass(frozen=True)
class TaskResult:
    display_name: str
    state: str  # SUCCEEDED, FAILED, CANCELLED; PENDING when not waited for (wait=False)
    error: Optional[str]
    # Each output artifact's path, by its name: <run dir>/pipeline_root/<task>/<name> (on Vertex
    # once the task has ended and been collected).
    artifacts: Dict[str, Path]

    @property
    def output_dir(self) -> Optional[Path]:
        """The step's own Hydra output dir (its .hydra/ and job log): see hydra_component."""
        return self.artifacts.get(RUN_DIR_OUTPUT)


@dataclass(frozen=True)
class PipelineRun:
    run_id: str
    state: str
    error: Optional[str]
    # By the task's name in the compiled pipeline's DAG.
    tasks: Dict[str, TaskResult]
    # pipeline.yaml, run.json, steps/<task>.log (local), tasks/<task>/vertex_status.json
    run_dir: Path
    console_url: Optional[str]

    @property
    def succeeded(self) -> bool:
        return self.state == "SUCCEEDED"


def run(
    pipeline: Any,
    arguments: Dict[str, Any],
    backend: Optional[str],
    output_dir: str,
    settings: Optional[VertexPipelineLauncherConf],
    launcher_settings: Mapping[str, Any],
) -> PipelineRun:
    conf = _settings(backend, settings, launcher_settings)
    name = getattr(pipeline, "name", None)
    if not isinstance(name, str) or not hasattr(pipeline, "pipeline_spec"):
        raise TypeError(f"run_pipeline runs a @dsl.pipeline function; got {pipeline!r}.")
    run_ctx = new_run(conf, name, Path(output_dir).absolute())
    pipeline_backend = make_backend(conf, run_ctx)
    outcomes: Dict[str, Outcome] = {}

    try:
        storage = None
        if not pipeline_backend.steps_share_filesystem:
            storage = open_storage(run_ctx.staging_uri, conf.request_timeout, conf.staging_root)

        def on_task_done(job: WatchedJob, task: TaskStatus) -> Outcome:
            outcomes[job.task_name] = collect_task(storage, run_ctx.local_dir, job, task)
            return outcomes[job.task_name]

        spec = _compile(pipeline, arguments, run_ctx, conf.backend)
        watched = _watched(spec, run_ctx.local_dir / TASKS_DIR)
        record = submit_and_watch(
            conf, pipeline_backend, run_ctx, watched, on_task_done, hand_built=True
        )
    finally:
        pipeline_backend.close()
    result = PipelineRun(
        run_id=run_ctx.run_id,
        state=record.state,
        error=record.error,
        tasks=_task_results(spec, watched, outcomes, run_ctx.local_dir),
        run_dir=run_ctx.local_dir,
        console_url=pipeline_backend.location.console_url,
    )
    _log_outcome(result)
    return result


def collect_task(
    storage: Optional[Storage], run_dir: Path, job: WatchedJob, task: TaskStatus
) -> Outcome:
    """A component's step hands back no result: the task ended as the backend says. Its output
    artifacts, where the backend keeps them apart from this machine (storage: the run's staging
    folder), come into the run dir as the local backend leaves them; where its console output
    is, when not in the run dir, is said and kept in the task's dir. Artifacts that cannot be
    read now stay where they are, for a later attach (the task is not collected)."""
    if task.logs:
        log.info(f"{job.display_name}: its console output is in {task.logs}")
        job.local_dir.mkdir(parents=True, exist_ok=True)
        (job.local_dir / LOGS_NOTE_FILE).write_text(f"{task.logs}\n", encoding="utf-8")
    if storage is None or not task.artifacts:
        return Outcome(task.state, task.error)
    try:
        refused = fetch_artifacts(storage, task.artifacts, run_dir / PIPELINE_ROOT / job.task_name)
    except Exception as e:  # noqa: BLE001 - reported on the task, not raised
        where = storage.uri(PIPELINE_ROOT)
        error = f"its artifacts could not be fetched ({e!r}); they are still in {where}: "
        error += attach_command(run_dir.parent.parent)
        return Outcome(task.state, _joined(task.error, error), collected=False)
    for problem in refused:
        log.warning(f"{job.display_name}: {problem}")
    return Outcome(task.state, _joined(task.error, *refused))


def _joined(*parts: Optional[str]) -> Optional[str]:
    return "; ".join(part for part in parts if part) or None


def _compile(
    pipeline: Any, arguments: Dict[str, Any], run_ctx: RunContext, backend: str
) -> Dict[str, Any]:
    """Compiles the pipeline, its arguments as its parameters' defaults, into the run's spec.
    Checked first, in a scratch dir: what is refused (bad arguments, what the local backend
    cannot run) leaves no run dir behind."""
    from kfp import compiler

    with tempfile.TemporaryDirectory() as scratch:
        compiled = Path(scratch) / run_ctx.spec_path.name
        compiler.Compiler().compile(pipeline, str(compiled), pipeline_parameters=arguments)
        spec = read_spec(compiled)
        _check_arguments(spec)
        if backend == "local":
            read_steps(spec, run_ctx.local_dir / PIPELINE_ROOT)
        run_ctx.spec_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(compiled), run_ctx.spec_path)
    return spec


def _check_arguments(spec: Dict[str, Any]) -> None:
    """Every pipeline parameter has a value: Vertex would refuse the run only once created."""
    parameters = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    missing = [
        name
        for name, parameter in parameters.items()
        if "defaultValue" not in parameter and not parameter.get("isOptional")
    ]
    if missing:
        raise ValueError(
            f"run_pipeline: the pipeline's parameter {missing[0]!r} has no value: give it in the "
            f"arguments ({{{missing[0]!r}: ...}}) or a default in the pipeline function."
        )


def _settings(
    backend: Optional[str],
    settings: Optional[VertexPipelineLauncherConf],
    launcher_settings: Mapping[str, Any],
) -> VertexPipelineLauncherConf:
    """The run's settings, checked as the launcher checks hydra.launcher. Step settings given
    as keywords are refused; a settings object (e.g. an app's whole hydra.launcher) may carry
    them, unused."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if settings is not None and launcher_settings:
        raise TypeError("run_pipeline takes settings= or settings as keywords, not both.")
    if settings is None:
        vertex = backend == "vertex"
        schema = VertexPipelineLauncherConf if vertex else VertexPipelineLocalLauncherConf
        try:
            merged = OmegaConf.merge(OmegaConf.structured(schema), dict(launcher_settings))
        except OmegaConfBaseException as e:
            raise LauncherConfigError(f"run_pipeline: {e}") from e
        settings = OmegaConf.to_object(merged)  # type: ignore[assignment]
        assert isinstance(settings, VertexPipelineLauncherConf)
        _refuse_step_settings(settings)
    conf = dataclasses.replace(settings, backend=backend or settings.backend)
    if conf.dry_run:
        # Never ignored: a settings object carrying it would otherwise start a real run.
        raise LauncherConfigError(
            "run_pipeline: dry_run=true stops a launch of Hydra jobs before anything is "
            "uploaded; a hand-built pipeline has no dry run. To check it without running it, "
            "compile it: kfp.compiler.Compiler().compile(pipeline, 'pipeline.yaml')."
        )
    # Each component names its own image: the launcher's is neither needed nor used.
    validate(dataclasses.replace(conf, image=conf.image or "each-components-own"))
    return conf


def _refuse_step_settings(conf: VertexPipelineLauncherConf) -> None:
    defaults = VertexPipelineLauncherConf()
    for name, instead in STEP_SETTINGS.items():
        if getattr(conf, name) != getattr(defaults, name):
            raise LauncherConfigError(
                f"run_pipeline: {name}={getattr(conf, name)!r} shapes the launcher's own steps, "
                f"not a hand-built pipeline's tasks: {instead}."
            )


def _watched(spec: Dict[str, Any], tasks_dir: Path) -> List[WatchedJob]:
    return [
        WatchedJob(num=num, task_name=key, display_name=display, local_dir=tasks_dir / key)
        for num, (key, display) in enumerate(task_display_names(spec).items())
    ]


def _task_results(
    spec: Dict[str, Any],
    watched: List[WatchedJob],
    outcomes: Mapping[str, Outcome],
    run_dir: Path,
) -> Dict[str, TaskResult]:
    """Each task's outcome (PENDING when the run was not waited for)."""
    outputs = output_artifacts(spec)
    results = {}
    for job in watched:
        outcome = outcomes.get(job.task_name, Outcome(State.PENDING))
        root = run_dir / PIPELINE_ROOT / job.task_name
        artifacts = {name: root / name for name in outputs[job.task_name]}
        results[job.task_name] = TaskResult(
            job.display_name, outcome.state.value, outcome.error, artifacts
        )
    return results


def _log_outcome(result: PipelineRun) -> None:
    states = ", ".join(f"{task.display_name}: {task.state}" for task in result.tasks.values())
    log.info(f"Pipeline run {result.run_id}: {result.state} ({states}); record: {result.run_dir}")
