"""Per-job settings: what shapes a job's step is read from that job's own composed config.

Hydra refuses to sweep `hydra.launcher.*` on the command line, so per-job values come from the
app's config: `hydra.launcher.resources.cpu_limit: ${model.cpu}` with `-m model=s,m,l`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List

from omegaconf import OmegaConf

from ..config import (
    CUSTOM_JOB_SETTINGS,
    LauncherConfigError,
    VertexPipelineLauncherConf,
    one_error,
    settings_from,
    validate,
)
from ._compose import ComposedJob

# The settings that shape one step; every other setting belongs to the whole run.
STEP_SETTINGS = ("resources", "retries", "env", "enable_caching", *CUSTOM_JOB_SETTINGS)


def settings_per_job(
    run_settings: VertexPipelineLauncherConf, jobs: List[ComposedJob]
) -> Dict[int, VertexPipelineLauncherConf]:
    """Each job's settings: the run's, with the step settings its own config gives.

    Raises one LauncherConfigError, naming the setting and the job for every job whose config
    changes a run-wide setting or gives a wrong step setting; called before anything is staged.
    """
    # Typing a node takes long; most jobs of a sweep share the same one.
    typed: Dict[str, VertexPipelineLauncherConf] = {}
    settings: Dict[int, VertexPipelineLauncherConf] = {}
    problems: List[str] = []
    for job in jobs:
        try:
            settings[job.num] = _job_settings(run_settings, job, typed)
        except LauncherConfigError as problem:
            problems.append(str(problem))
    if problems:
        raise one_error(problems, "jobs' settings need a fix")
    return settings


def _job_settings(
    run_settings: VertexPipelineLauncherConf,
    job: ComposedJob,
    typed: Dict[str, VertexPipelineLauncherConf],
) -> VertexPipelineLauncherConf:
    own = _own_settings(job, typed)
    for name in _run_wide_names():
        if getattr(own, name) != getattr(run_settings, name):
            raise LauncherConfigError(
                f"{_job_name(job)} sets hydra.launcher.{name}={_shown(getattr(own, name))} but "
                f"the run uses {_shown(getattr(run_settings, name))}: {name} belongs to the whole "
                f"run. Set it in the primary config (not per job); per job, only "
                f"{', '.join(STEP_SETTINGS)} may differ."
            )
    settings = dataclasses.replace(
        run_settings, **{name: getattr(own, name) for name in STEP_SETTINGS}
    )
    try:
        validate(settings)
    except LauncherConfigError as e:
        raise LauncherConfigError(f"{_job_name(job)}: {e}") from e
    return settings


def _own_settings(
    job: ComposedJob, typed: Dict[str, VertexPipelineLauncherConf]
) -> VertexPipelineLauncherConf:
    """Resolved where they stand, so that `${model.cpu}` reads the job's own `model`.

    typed: the settings of each resolved node seen so far, by its repr (which tells 1 from 1.0
    and "1", unlike ==); the settings are never changed, only replaced.
    """
    try:
        node = OmegaConf.to_container(job.sweep_config.hydra.launcher, resolve=True)
        key = repr(node)
        if key not in typed:
            typed[key] = settings_from(node)
        return typed[key]
    except Exception as e:  # noqa: BLE001 - omegaconf's resolution and validation errors
        raise LauncherConfigError(f"{_job_name(job)}: its hydra.launcher settings: {e}") from e


def _run_wide_names() -> List[str]:
    fields = dataclasses.fields(VertexPipelineLauncherConf)
    return [f.name for f in fields if f.name not in STEP_SETTINGS]


def _job_name(job: ComposedJob) -> str:
    return f"Job {job.display_name}"


def _shown(value: Any) -> str:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return repr(value)
