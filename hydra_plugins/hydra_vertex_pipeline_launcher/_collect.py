"""Collect: a finished job's outputs and result come back from the staging root into its dir."""

from __future__ import annotations

import copy
import logging
import os
import time
from typing import Any, Dict, List, Optional, Tuple

from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from . import _layout
from ._app_main import loads_from_step
from ._backend import State, TaskStatus
from ._compose import ComposedJob, job_output_path
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
        reason += _attempts_note(storage, job.num)
        if task.error:
            reason += f"; {task.error}"
        return _failed(job, "; ".join([reason, *problems]) + f" ({run_hint})", task, local_cwd)
    if problems:
        log.warning(f"job #{job.num}: " + "; ".join(problems))
    if job_return.status is JobStatus.COMPLETED:
        return job_return, Outcome(State.SUCCEEDED, "; ".join(problems) or None)
    return job_return, Outcome(State.FAILED, "\n".join([*problems, error or ""]).strip())


def _read_result(
    storage: Storage, job: ComposedJob, local_cwd: str, problems: List[str]
) -> Tuple[Optional[JobReturn], Optional[str]]:
    """The JobReturn, rebuilt from the job composed here around the little the step sent."""
    raw = storage.read(_layout.job_result(job.num))
    if raw is None:
        return None, None
    result: Dict[str, Any] = loads_from_step(raw)
    if result["upload_error"]:
        problems.append(result["upload_error"])
    job_return = composed_return(job, local_cwd, result["ran_in_output_dir"])
    job_return.status = result["status"]
    job_return.return_value = result["return_value"]
    error = None
    if job_return.status is not JobStatus.COMPLETED:
        error = result["traceback"]
        if result["attempt"] > 1:
            error += f"\n(the last of {result['attempt']} attempts of its step)"
        exception = job_return._return_value
        if hasattr(exception, "add_note"):  # Python 3.11+: shown under the exception
            exception.add_note(f"Remote traceback of job #{job.num}:\n{error}")
    return job_return, error


def _attempts_note(storage: Storage, num: int) -> str:
    try:
        attempts = int(storage.read(_layout.job_attempts(num)) or b"0")
    except Exception:  # noqa: BLE001 - only a detail of the message
        return ""
    return f" after {attempts} attempts" if attempts > 1 else ""


def _failed(
    job: ComposedJob, reason: str, task: TaskStatus, local_cwd: str
) -> Tuple[JobReturn, Outcome]:
    message = f"job #{job.num} ({job.display_name}): {reason}"
    job_return = composed_return(job, local_cwd, ran_in_output_dir=_chdir(job.sweep_config))
    job_return.status = JobStatus.FAILED
    job_return.return_value = PipelineTaskError(message)
    state = State.CANCELLED if task.state is State.CANCELLED else State.FAILED
    return job_return, Outcome(state, message)


def composed_return(job: ComposedJob, local_cwd: str, ran_in_output_dir: bool) -> JobReturn:
    """The JobReturn Hydra's run_job gives for this job on this machine, but for its outcome.

    As run_job: `hydra.runtime.output_dir` is the absolute output dir, and `working_dir` the
    output dir as joined (often relative) when the job ran there, else the launch dir.
    """
    config = copy.deepcopy(job.sweep_config)
    output_dir = job_output_path(config, job.dir_keys)
    with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
        config.hydra.runtime.output_dir = os.path.abspath(output_dir)
    hydra_cfg = OmegaConf.masked_copy(config, "hydra")
    with read_write(config), open_dict(config):
        del config["hydra"]
    return JobReturn(
        overrides=list(job.overrides),
        cfg=config,
        hydra_cfg=hydra_cfg,
        working_dir=output_dir if ran_in_output_dir else local_cwd,
        task_name=str(job.sweep_config.hydra.job.name),
    )


def _chdir(sweep_config: DictConfig) -> bool:
    """Whether run_job changes into the output dir: hydra.job.chdir, unset meaning no."""
    return bool(OmegaConf.select(sweep_config, "hydra.job.chdir"))
