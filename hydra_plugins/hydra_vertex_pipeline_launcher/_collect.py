"""Collect: a finished job's outputs and result come back from the staging root into its dir."""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import cloudpickle
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from . import _layout
from ._backend import State, TaskStatus
from ._compose import ComposedJob
from ._storage import Storage
from ._watch import Outcome, WatchedJob

log = logging.getLogger(__name__)


class LogStreamer:
    """Brings running jobs' logs, as their steps last uploaded them, into the local job dirs;
    a log that has not changed since the last refresh is not downloaded again."""

    def __init__(self, storage: Storage, jobs: Dict[int, ComposedJob], interval: float) -> None:
        self.storage = storage
        self.jobs = jobs
        self.interval = interval
        self._last = 0.0
        # Each log object's version as last downloaded, by object name.
        self._versions: Dict[str, Any] = {}

    def __call__(self, running: List[WatchedJob]) -> None:
        if not running or time.monotonic() - self._last < self.interval:
            return
        self._last = time.monotonic()
        targets = {}
        for watched in running:
            job = self.jobs[watched.num]
            log_name = f"{job.sweep_config.hydra.job.name}.log"
            targets[_layout.job_live_log(job.num)] = job.local_dir / log_name
        try:
            self.storage.download_changed(targets, self._versions)
        except Exception as e:  # noqa: BLE001 - a missed log refresh is not worth failing a run
            log.warning(f"Could not refresh running jobs' logs: {e!r}")


class PipelineTaskError(RuntimeError):
    """A job whose step ended without handing back a result (killed, cancelled, never ran)."""


def collect(
    storage: Storage, job: ComposedJob, task: TaskStatus, local_cwd: str, run_hint: str
) -> Tuple[JobReturn, Outcome]:
    """Never raises for one job's trouble: every other job's results must survive it."""
    problems = []
    try:
        storage.download_dir(_layout.job_output(job.num), job.local_dir)
    except Exception as e:  # noqa: BLE001 - reported on the job, not raised
        problems.append(f"its outputs could not be collected: {e!r}")
    try:
        job_return, error = _read_result(storage, job, local_cwd, problems)
    except Exception as e:  # noqa: BLE001
        job_return, error = None, f"its result could not be read: {e!r}"
    if job_return is None:
        reason = error or f"its step ended {task.state.value} without a result"
        if task.error:
            reason += f"; {task.error}"
        return _failed(job, "; ".join([reason, *problems]) + f" ({run_hint})", task)
    if problems:
        log.warning(f"job #{job.num}: " + "; ".join(problems))
    if job_return.status is JobStatus.COMPLETED:
        return job_return, Outcome(State.SUCCEEDED, "; ".join(problems) or None)
    return job_return, Outcome(State.FAILED, "\n".join([*problems, error or ""]).strip())


def _read_result(
    storage: Storage, job: ComposedJob, local_cwd: str, problems: List[str]
) -> Tuple[Optional[JobReturn], Optional[str]]:
    raw = storage.read(_layout.job_result(job.num))
    if raw is None:
        return None, None
    result: Dict[str, Any] = cloudpickle.loads(raw)
    if result["upload_error"]:
        problems.append(result["upload_error"])
    job_return: JobReturn = result["job_return"]
    if job_return.hydra_cfg is None:  # the step failed before Hydra composed anything there
        known = _composed_return(job)
        known.status, known.return_value = job_return.status, job_return._return_value
        job_return = known
    _map_paths(job_return, result, job.local_dir, local_cwd)
    error = None
    if job_return.status is not JobStatus.COMPLETED:
        error = result["traceback"]
        exception = job_return._return_value
        if hasattr(exception, "add_note"):  # Python 3.11+: shown under the exception
            exception.add_note(f"Remote traceback of job #{job.num}:\n{error}")
    return job_return, error


def _map_paths(
    job_return: JobReturn, result: Dict[str, Any], local_dir: Path, local_cwd: str
) -> None:
    """The step's paths (a container's, on Vertex) become this machine's."""
    job_return.working_dir = str(local_dir) if result["ran_in_output_dir"] else local_cwd
    if isinstance(job_return.hydra_cfg, DictConfig):
        with read_write(job_return.hydra_cfg.hydra.runtime):
            job_return.hydra_cfg.hydra.runtime.output_dir = str(local_dir)
            job_return.hydra_cfg.hydra.runtime.cwd = local_cwd


def _failed(job: ComposedJob, reason: str, task: TaskStatus) -> Tuple[JobReturn, Outcome]:
    message = f"job #{job.num} ({job.display_name}): {reason}"
    job_return = _composed_return(job)
    job_return.status = JobStatus.FAILED
    job_return.return_value = PipelineTaskError(message)
    state = State.CANCELLED if task.state is State.CANCELLED else State.FAILED
    return job_return, Outcome(state, message)


def _composed_return(job: ComposedJob) -> JobReturn:
    """What is known of a job on this machine, for a step that could not say it itself."""
    task_config = copy.deepcopy(job.sweep_config)
    hydra_cfg = OmegaConf.create({"hydra": task_config.hydra})
    with read_write(task_config), open_dict(task_config):
        del task_config["hydra"]
    return JobReturn(
        overrides=list(job.overrides),
        cfg=task_config,
        hydra_cfg=hydra_cfg,
        working_dir=str(job.local_dir),
        task_name=str(job.sweep_config.hydra.job.name),
    )
