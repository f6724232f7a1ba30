"""Collect: a finished job's outputs and result come back from the staging root into its dir."""

from __future__ import annotations

import copy
import logging
import os
import pickle
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from .._backends._base import State, TaskStatus
from .._shared import _layout
from .._shared._app_main import loads_from_step
from .._shared._job_dirs import job_output_path
from .._shared._storage import Storage, UnsafeObjectName
from ._compose import ComposedJob
from ._watch import Outcome, WatchedJob

log = logging.getLogger(__name__)


class LogStreamer:
    """Brings running jobs' logs, as their steps last uploaded them, into the local job dirs;
    a log that has not changed since the last refresh is not downloaded again."""

    def __init__(self, storage: Storage, interval: float) -> None:
        self.storage = storage
        self.interval = interval
        self._last = 0.0
        # Each log object's version as last downloaded, by object name.
        self._versions: Dict[str, Any] = {}

    def __call__(self, running: List[WatchedJob]) -> None:
        if not running or time.monotonic() - self._last < self.interval:
            return
        self._last = time.monotonic()
        targets = {_layout.job_live_log(job.num): job.local_dir / job.log_name for job in running}
        try:
            self.storage.download_changed(targets, self._versions)
        except Exception as e:  # noqa: BLE001 - a missed log refresh is not worth failing a run
            log.warning(f"Could not refresh running jobs' logs: {e!r}")


class PipelineTaskError(RuntimeError):
    """A job whose step ended without handing back a result (killed, cancelled, never ran)."""


@dataclass(frozen=True)
class Collected:
    """A finished job, as collected into its dir: needs nothing of the composed job, so that a
    run can be collected by a process that did not launch it (attach)."""

    outcome: Outcome
    # The step's result (see _step._handback._result_bytes); None when it handed back none.
    result: Optional[Dict[str, Any]]


def collect(
    storage: Storage, job: WatchedJob, task: TaskStatus, run_hint: str, attach_hint: str = ""
) -> Collected:
    """Never raises for one job's trouble: every other job's results must survive it.

    When the staging root cannot be read (each request retried for request_timeout), the job
    is FAILED and not collected: its outputs and result stay where the step left them, and
    attach_hint says how to fetch them later.
    """
    try:
        problems = _fetch_outputs(storage, job)
        raw = _fetch_result(storage, job)
    except Exception as e:  # noqa: BLE001 - reported on the job, not raised
        where = storage.uri(_layout.job_prefix(job.num))
        message = (
            f"job #{job.num} ({job.display_name}): its outputs and result could not be "
            f"collected ({e!r}); they are still in {where}"
        )
        if attach_hint:
            message += f": {attach_hint}"
        return Collected(Outcome(State.FAILED, message, collected=False), None)
    try:
        result, error = (None if raw is None else read_result(raw)), None
    except Exception as e:  # noqa: BLE001
        result, error = None, f"its result could not be read: {e!r}"
    if result is None:
        reason = error or f"its step ended {task.state.value} without a result"
        reason += _attempts_note(storage, job.num)
        if task.error:
            reason += f"; {task.error}"
        message = f"job #{job.num} ({job.display_name}): " + "; ".join([reason, *problems])
        state = State.CANCELLED if task.state is State.CANCELLED else State.FAILED
        return Collected(Outcome(state, f"{message} ({run_hint})"), None)
    if result["upload_error"]:
        problems.append(result["upload_error"])
    problems += result.get("warnings") or []
    if problems:
        log.warning(f"job #{job.num}: " + "; ".join(problems))
    if result["status"] is JobStatus.COMPLETED:
        return Collected(Outcome(State.SUCCEEDED, "; ".join(problems) or None), result)
    return Collected(Outcome(State.FAILED, "\n".join([*problems, failure(result)])), result)


def _fetch_outputs(storage: Storage, job: WatchedJob) -> List[str]:
    """The step's output dir into the job dir; what could not be written, said."""
    try:
        storage.download_dir(_layout.job_output(job.num), job.local_dir)
    except UnsafeObjectName as e:  # refused names are never written; the rest came back
        return [f"its outputs could not all be collected: {e}"]
    return []


def _fetch_result(storage: Storage, job: WatchedJob) -> Optional[bytes]:
    """The step's raw result, also kept in the job dir: a staging root may be cleaned up, and
    resume rebuilds the job's JobReturn from it."""
    raw = storage.read(_layout.job_result(job.num))
    if raw is not None:
        kept = job.local_dir / _layout.JOB_RESULT_FILE
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_bytes(raw)
    return raw


def read_result(raw: bytes) -> Dict[str, Any]:
    """The outer result holds plain values only; the return value stays pickled in "value"
    until a JobReturn is built, so a process without the app's modules can read the rest."""
    result: Dict[str, Any] = pickle.loads(raw)
    return result


def failure(result: Dict[str, Any]) -> str:
    """A failed step's own account: its traceback, and how many attempts it took."""
    error = str(result["traceback"]) or f"the step reported {result['status'].name}, saying no more"
    if result["attempt"] > 1:
        error += f"\n(the last of {result['attempt']} attempts of its step)"
    return error


def _attempts_note(storage: Storage, num: int) -> str:
    try:
        attempts = int(storage.read(_layout.job_attempts(num)) or b"0")
    except Exception:  # noqa: BLE001 - only a detail of the message
        return ""
    return f" after {attempts} attempts" if attempts > 1 else ""


def job_return(job: ComposedJob, collected: Collected, local_cwd: str) -> JobReturn:
    """The JobReturn of a collected job, rebuilt from the job composed here."""
    result = collected.result
    if result is None:
        returned = composed_return(job, local_cwd, ran_in_output_dir=_chdir(job.sweep_config))
        returned.status = JobStatus.FAILED
        returned.return_value = PipelineTaskError(collected.outcome.error)
        return returned
    returned = composed_return(job, local_cwd, result["ran_in_output_dir"])
    returned.status = result["status"]
    returned.return_value = loads_from_step(result["value"])
    exception = returned._return_value
    if returned.status is not JobStatus.COMPLETED and hasattr(exception, "add_note"):
        # Python 3.11+: shown under the exception
        exception.add_note(f"Remote traceback of job #{job.num}:\n{failure(result)}")
    return returned


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
