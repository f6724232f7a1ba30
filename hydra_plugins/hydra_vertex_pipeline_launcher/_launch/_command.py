"""Command mode (hydra.launcher.execution=command), the launcher's side: each step runs the app's
own entrypoint in the image (see _step._command_job), with the job's overrides as Hydra override
arguments. Planned here: the run's arguments (the command, --config-name/--config-dir as
launched, the callback that hands the result back) and each job's (its overrides exactly as the
sweeper produced them, and where Hydra puts its outputs, as composed here).
"""

from __future__ import annotations

import importlib.metadata
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.override_parser.types import Quote, QuotedString
from hydra.types import TaskFunction
from omegaconf import DictConfig, OmegaConf

from .._shared._app_main import launching_main
from .._shared._job_dirs import job_output_path
from ..config import LauncherConfigError, VertexPipelineLauncherConf
from ._compose import ComposedJob

CALLBACK = "vertex_pipeline_handback"
CALLBACK_TARGET = (
    "hydra_plugins.hydra_vertex_pipeline_launcher._step._command_callback.HandBackToStep"
)
# What the step sets for each job: a user's own value of these would move its outputs, and
# Hydra's own hydra.mode=MULTIRUN would make the job launch a sweep of its own.
STEP_SET_KEYS = ("hydra.run.dir", "hydra.job.name", "hydra.job.num", "hydra.job.id", "hydra.mode")


@dataclass(frozen=True)
class CommandPlan:
    # The app's command and the run's own arguments to it, the same for every job.
    args: List[str]
    # Each job's override arguments, by job number.
    job_overrides: Dict[int, List[str]]
    # Steps run in containers (not in the launch dir): files a job leaves outside its output
    # dir stay there, and the step says so.
    in_container: bool = False


def plan(
    settings: VertexPipelineLauncherConf,
    jobs: List[ComposedJob],
    in_container: bool,
    task_function: TaskFunction,
) -> CommandPlan:
    first = jobs[0].sweep_config
    launch_dir = str(first.hydra.runtime.cwd)
    command = settings.command or default_command(launch_dir, task_function)
    args = [
        *map(str, command),
        *_config_args(first, launch_dir, in_container),
        f"++hydra.callbacks.{CALLBACK}._target_={CALLBACK_TARGET}",
    ]
    overrides = {job.num: job_overrides(job, launch_dir, in_container) for job in jobs}
    return CommandPlan(args=args, job_overrides=overrides, in_container=in_container)


def default_command(launch_dir: str, task_function: TaskFunction) -> List[str]:
    """How this app was started, when its task is the started one's: its script (relative to
    the launch dir when inside it) or `-m` module; a package's `__main__` that calls the task;
    the console script (a `console_scripts` entry point) of an installed package."""
    task_module = str(getattr(task_function, "__module__", ""))
    main = launching_main(launch_dir)
    if main is not None and task_module == "__main__":
        return ["python", str(main.path)] if main.path else ["python", "-m", str(main.module)]
    script = console_script(task_module)
    if script is not None:
        # By name: the step finds it on its PATH or beside its Python (_command_job.runnable).
        return [script]
    spec_name = str(getattr(getattr(sys.modules.get("__main__"), "__spec__", None), "name", ""))
    package = spec_name[: -len(".__main__")] if spec_name.endswith(".__main__") else ""
    if package and (task_module == package or task_module.startswith(f"{package}.")):
        return ["python", "-m", package]
    raise LauncherConfigError(
        f"hydra.launcher.execution=command: the task ({task_module}) was not started as this "
        "process's main script or module, so a step cannot start it the same way. Set "
        "hydra.launcher.command to the app's entrypoint in the image, e.g. "
        "hydra.launcher.command=[python,train.py]."
    )


def console_script(task_module: str) -> Optional[str]:
    """The name of the console script this process was started as, when it is an entry point
    of an installed package whose function lives in task_module."""
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if not main_file:
        return None
    name = Path(main_file).name
    for entry_point in _console_scripts():
        module = entry_point.value.partition(":")[0].strip()
        if entry_point.name == name and module == task_module:
            return name
    return None


def _console_scripts() -> List[Any]:
    found = importlib.metadata.entry_points()
    if hasattr(found, "select"):  # Python 3.10 and later
        return list(found.select(group="console_scripts"))
    return list(found.get("console_scripts", []))  # type: ignore[attr-defined]


def job_overrides(job: ComposedJob, launch_dir: str, in_container: bool) -> List[str]:
    """The job's Hydra overrides as composed (each exactly as the sweeper wrote it), then where
    its outputs go and its name, number and id, as the launcher composed them."""
    config = job.sweep_config
    # As written: an override such as hydra.sweep.subdir=${hydra.job.override_dirname} holds
    # an interpolation, which reading the list's items would resolve.
    written = OmegaConf.to_container(config.hydra.overrides.hydra, resolve=False)
    assert isinstance(written, list)
    hydra_overrides = [str(o) for o in written if str(o).split("=", 1)[0] not in STEP_SET_KEYS]
    output_dir = job_output_path(config, job.dir_keys)
    if in_container:
        output_dir = container_path(output_dir, launch_dir)
    placed = ["hydra.mode=RUN", f"hydra.run.dir={_quoted(output_dir)}"]
    for key in ("name", "num", "id"):
        value = OmegaConf.select(config, f"hydra.job.{key}")
        if value is not None:  # unset for a run without -m
            shown = str(value) if isinstance(value, int) else _quoted(str(value))
            placed.append(f"hydra.job.{key}={shown}")
    return [*hydra_overrides, *map(str, job.overrides), *placed]


def _quoted(value: str) -> str:
    """value as a quoted override value that Hydra reads back as it is (commas, `=`, quotes)."""
    return QuotedString(text=value, quote=Quote.single).with_quotes()


def container_path(path: str, launch_dir: str) -> str:
    """The image's working dir stands for the launch dir: an absolute path inside it becomes
    relative, one outside it relative to its root (as payload steps map the sweep dir)."""
    absolute = Path(path)
    if not absolute.is_absolute():
        return path
    cwd = Path(launch_dir)
    return str(absolute.relative_to(cwd if cwd in absolute.parents else absolute.anchor))


def _config_args(config: DictConfig, launch_dir: str, in_container: bool) -> List[str]:
    """--config-name and --config-dir as the app was launched with them."""
    args = []
    config_name = OmegaConf.select(config, "hydra.job.config_name")
    if config_name:
        args += ["--config-name", str(config_name)]
    for source in config.hydra.runtime.config_sources:
        if source.provider == "command-line" and source.schema == "file":
            path = str(source.path)
            args += ["--config-dir", container_path(path, launch_dir) if in_container else path]
    return args
