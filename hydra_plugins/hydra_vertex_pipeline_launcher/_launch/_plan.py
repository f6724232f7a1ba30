"""The end of a dry run (hydra.launcher.dry_run=true): the plan of the run a launch would have
created, written beside its compiled pipeline.yaml, and a short summary. Nothing was uploaded
and nothing created: the launch ends here, with exit status 0."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Dict, List, NoReturn

from .._backends._base import RunContext
from .._shared._layout import job_prefix
from ..config import VertexPipelineLauncherConf
from ._compose import ComposedJob
from ._job_settings import STEP_SETTINGS
from ._record import write_json
from ._stage import StagedRun

log = logging.getLogger(__name__)

PLAN_FILE = "plan.json"


def end_dry_run(
    settings: VertexPipelineLauncherConf,
    run: RunContext,
    jobs: List[ComposedJob],
    job_settings: Dict[int, VertexPipelineLauncherConf],
    staged: StagedRun,
    task_jobs: Dict[str, int],
) -> NoReturn:
    """Writes the plan and says where it is; ends the process as a successful run does (a
    sweeper gets no return values to go on with: there are none)."""
    task_of = {num: task for task, num in task_jobs.items()}
    entries = [_job_entry(job, job_settings[job.num], staged, task_of[job.num]) for job in jobs]
    plan = dry_run_plan(settings, run, staged, entries)
    path = run.local_dir / PLAN_FILE
    write_json(path, plan)
    size = plan["staged"]["bytes"]
    log.info(
        f"Dry run: {len(jobs)} job(s) planned as {run.run_id}; nothing was uploaded or created. "
        f"{run.spec_path.name} and {PLAN_FILE} are in {run.local_dir}; a launch would stage "
        f"{plan['staged']['objects']} objects ({_megabytes(size)}) to {run.staging_uri}."
    )
    raise SystemExit(0)


def dry_run_plan(
    settings: VertexPipelineLauncherConf,
    run: RunContext,
    staged: StagedRun,
    job_entries: List[Dict[str, Any]],
) -> Dict[str, Any]:
    """The run's settings, every object a launch would stage (by name, with its size in bytes:
    the shared ones here, each job's with the job) and the jobs."""
    per_job = {name for entry in job_entries for name in entry["staged"]}
    return {
        "dry_run": True,
        "run_id": run.run_id,
        "pipeline_name": run.pipeline_name,
        "pipeline_spec": run.spec_path.name,
        "staging_uri": run.staging_uri,
        # The run's own; each job's step settings are with the job.
        "run_settings": {
            name: value
            for name, value in dataclasses.asdict(settings).items()
            if name not in STEP_SETTINGS
        },
        "staged": {
            "objects": len(staged.blobs),
            "bytes": sum(len(data) for data in staged.blobs.values()),
            "shared": {
                name: len(data) for name, data in staged.blobs.items() if name not in per_job
            },
        },
        "jobs": job_entries,
    }


def _job_entry(
    job: ComposedJob, settings: VertexPipelineLauncherConf, staged: StagedRun, task_name: str
) -> Dict[str, Any]:
    """A job's task, step settings (its own) and staged objects."""
    prefix = f"{job_prefix(job.num)}/"
    return {
        "num": job.num,
        "overrides": list(job.overrides),
        "task_name": task_name,
        "display_name": job.display_name,
        "dir": str(job.local_dir),
        "step_settings": {name: _plain(getattr(settings, name)) for name in STEP_SETTINGS},
        "staged": {
            name: len(data) for name, data in staged.blobs.items() if name.startswith(prefix)
        },
    }


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.1f} kB"
