"""Collect: a finished job's outputs and result come back from the staging root into its dir."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import CompactHydraException
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from .._backends._base import State, TaskStatus
from .._shared import _layout
from .._shared._app_main import loads_from_step
from .._shared._job_dirs import job_output_path
from .._shared._result import ResultRefused, RunKey, SealedResult, unseal
from .._shared._storage import Storage, UnsafeObjectName
from ._compose import ComposedJob
from ._remote_trace import with_remote_frames
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


class PipelineTaskError(CompactHydraException, RuntimeError):
    """A job whose step ended without handing back a result (killed, cancelled, never ran).
    Compact: Hydra prints its message, which says it all, without the launcher's frames."""


class RemoteJobError(RuntimeError):
    """A job whose step handed back an outcome that cannot be loaded here (an exception class
    that does not unpickle, a class only the image has): what it said, as text."""


@dataclass(frozen=True)
class Collected:
    """A finished job, as collected into its dir: needs nothing of the composed job, so that a
    run can be collected by a process that did not launch it (attach)."""

    outcome: Outcome
    # The step's result, its seal checked, its value not loaded; None when it handed back none.
    result: Optional[SealedResult]


def collect(
    storage: Storage,
    job: WatchedJob,
    task: TaskStatus,
    run_hint: str,
    attach_hint: str = "",
    *,
    run_key: RunKey,
) -> Collected:
    """Never raises for one job's trouble: every other job's results must survive it. Loads
    nothing but JSON: a result is taken only once its seal proves the run's step wrote it.

    When the staging root cannot be read (each request retried for request_timeout), the job
    is FAILED and not collected: its outputs and result stay where the step left them, and
    attach_hint says how to fetch them later.
    """
    try:
        problems = _fetch_outputs(storage, job)
        raw = storage.read(_layout.job_result(job.num))
    except Exception as e:  # noqa: BLE001 - reported on the job, not raised
        where = storage.uri(_layout.job_prefix(job.num))
        message = (
            f"job #{job.num} ({job.display_name}): its outputs and result could not be "
            f"collected ({e!r}); they are still in {where}"
        )
        if attach_hint:
            message += f": {attach_hint}"
        return Collected(Outcome(State.FAILED, message, collected=False), None)
    result, refused = _checked(raw, run_key, job)
    if result is None:
        reason = refused or f"its step ended {task.state.value} without a result"
        reason += _attempts_note(storage, job.num)
        if task.error:
            reason += f"; {task.error}"
        message = f"job #{job.num} ({job.display_name}): " + "; ".join([reason, *problems])
        cancelled = task.state is State.CANCELLED and not refused
        state = State.CANCELLED if cancelled else State.FAILED
        return Collected(Outcome(state, f"{message} ({run_hint})"), None)
    if result.upload_error:
        problems.append(result.upload_error)
    problems += list(result.warnings)
    if problems:
        log.warning(f"job #{job.num}: " + "; ".join(problems))
    if result.status == JobStatus.COMPLETED.name:
        return Collected(Outcome(State.SUCCEEDED, "; ".join(problems) or None), result)
    # The step's own account first: its traceback's exception is what a failure is named by.
    return Collected(Outcome(State.FAILED, "\n".join([failure(result), *problems])), result)


def _fetch_outputs(storage: Storage, job: WatchedJob) -> List[str]:
    """The step's output dir into the job dir; what could not be written, said. Names only the
    launcher writes (the job's status and result, a single run's records) are refused."""
    try:
        storage.download_dir(_layout.job_output(job.num), job.local_dir, _layout.LAUNCHER_OWNED)
    except UnsafeObjectName as e:  # refused names are never written; the rest came back
        return [f"its outputs could not all be collected: {e}"]
    return []


def _checked(
    raw: Optional[bytes], run_key: RunKey, job: WatchedJob
) -> Tuple[Optional[SealedResult], str]:
    """The result if its seal matches and it is this job's; else why it was refused. A sealed
    result is also kept in the job dir: a staging root may be cleaned up, and resume rebuilds
    the job's JobReturn from it."""
    if raw is None:
        return None, ""
    try:
        result = unseal(raw, run_key.key)
        if (result.run_id, result.job) != (run_key.run_id, job.num):
            raise ResultRefused(
                f"it is the result of job #{result.job} of run {result.run_id}, copied here"
            )
    except ResultRefused as e:
        log.error(f"job #{job.num}: its result was refused: {e}")
        return None, f"its result was refused and not loaded: {e}"
    kept = job.local_dir / _layout.JOB_RESULT_FILE
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_bytes(raw)
    return result, ""


def failure(result: SealedResult) -> str:
    """A failed step's own account: its traceback, and how many attempts it took."""
    error = result.traceback or f"the step reported {result.status}, saying no more"
    if result.attempt > 1:
        error += f"\n(the last of {result.attempt} attempts of its step)"
    return error


def _attempts_note(storage: Storage, num: int) -> str:
    try:
        attempts = int(storage.read(_layout.job_attempts(num)) or b"0")
    except Exception:  # noqa: BLE001 - only a detail of the message
        return ""
    return f" after {attempts} attempts" if attempts > 1 else ""


def job_return(job: ComposedJob, collected: Collected, local_cwd: str) -> Tuple[JobReturn, Outcome]:
    """The JobReturn of a collected job, rebuilt from the job composed here, and the job's
    outcome: FAILED, saying why, when its value or exception cannot be loaded here."""
    result = collected.result
    if result is None:
        returned = composed_return(job, local_cwd, ran_in_output_dir=job.chdir)
        returned.status = JobStatus.FAILED
        returned.return_value = PipelineTaskError(collected.outcome.error)
        return returned, collected.outcome
    returned = composed_return(job, local_cwd, result.ran_in_output_dir)
    returned.status = JobStatus[result.status]
    try:
        returned.return_value = load_value(result)
    except Exception as e:  # noqa: BLE001 - one job's value must not cost the others theirs
        return _unloadable(job, returned, collected, e)
    if returned.status is not JobStatus.COMPLETED:
        _with_remote_frames(returned._return_value, result)
    return returned, collected.outcome


def load_value(result: SealedResult) -> Any:
    """The job's return value (or exception): plain JSON, or what its step pickled."""
    if "json" in result.value:
        return result.value["json"]
    return loads_from_step(result.pickled)


def _unloadable(
    job: ComposedJob, returned: JobReturn, collected: Collected, error: Exception
) -> Tuple[JobReturn, Outcome]:
    result = collected.result
    assert result is not None
    loading = f"{type(error).__name__}: {error}"
    if returned.status is JobStatus.COMPLETED:
        headline = (
            f"the job succeeded, but its return value could not be loaded here ({loading}): "
            "return plain values, or classes importable where you launch"
        )
    else:
        said = _last_line(result.traceback) or f"the job ended {result.status}"
        headline = f"{said} (its exception could not be loaded here: {loading})"
    returned.status = JobStatus.FAILED
    returned.return_value = RemoteJobError(f"job #{job.num}: {headline}")
    if result.traceback:
        _with_remote_frames(returned._return_value, result)
    message = "\n".join(part for part in (headline, collected.outcome.error) if part)
    log.error(f"job #{job.num}: {headline}")
    return returned, Outcome(State.FAILED, message, collected.outcome.collected)


def _with_remote_frames(exception: Any, result: SealedResult) -> None:
    """Hydra prints the exception as its own launcher's: the app's frames, from its step."""
    if isinstance(exception, BaseException):
        with_remote_frames(exception, result.traceback)


def _last_line(trace: str) -> str:
    """A Python traceback's last line names the exception and its message."""
    lines = [line for line in trace.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def composed_return(job: ComposedJob, local_cwd: str, ran_in_output_dir: bool) -> JobReturn:
    """The JobReturn Hydra's run_job gives for this job on this machine, but for its outcome.

    As run_job: `hydra.runtime.output_dir` is the absolute output dir, and `working_dir` the
    output dir as joined (often relative) when the job ran there, else the launch dir. Its
    configs are built when first read (_ConfigsOnRead): a sweep's returns hold a few KiB a job.
    """
    output_dir = job_output_path(job.sweep_config, job.dir_keys)
    return _ConfigsOnRead(
        job,
        overrides=list(job.overrides),
        working_dir=output_dir if ran_in_output_dir else local_cwd,
        task_name=job.job_name,
    )


class _ConfigsOnRead(JobReturn):
    """A JobReturn whose cfg and hydra_cfg are made from the job's kept config when first read
    (then kept): until the sweeper looks at them, they cost nothing."""

    def __init__(self, job: ComposedJob, **fields: Any) -> None:
        self._job: Optional[ComposedJob] = job
        self._cfg: Optional[DictConfig] = None
        self._hydra_cfg: Optional[DictConfig] = None
        super().__init__(**fields)

    @property  # type: ignore[override]
    def cfg(self) -> Optional[DictConfig]:
        self._build()
        return self._cfg

    @cfg.setter
    def cfg(self, value: Optional[DictConfig]) -> None:
        self._set_configs(cfg=value)

    @property  # type: ignore[override]
    def hydra_cfg(self) -> Optional[DictConfig]:
        self._build()
        return self._hydra_cfg

    @hydra_cfg.setter
    def hydra_cfg(self, value: Optional[DictConfig]) -> None:
        self._set_configs(hydra_cfg=value)

    def _set_configs(self, **values: Optional[DictConfig]) -> None:
        """A value set by hand (JobReturn's __init__ sets None) wins over the built one."""
        if all(value is None for value in values.values()):
            return
        self._build()
        for name, value in values.items():
            setattr(self, f"_{name}", value)

    def _build(self) -> None:
        if self._job is None:
            return
        job, self._job = self._job, None
        config = job.sweep_config
        output_dir = job_output_path(config, job.dir_keys)
        with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
            config.hydra.runtime.output_dir = os.path.abspath(output_dir)
        self._hydra_cfg = OmegaConf.masked_copy(config, "hydra")
        with read_write(config), open_dict(config):
            del config["hydra"]
        self._cfg = config
