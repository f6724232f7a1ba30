"""Resume: a job whose dir holds a collected success for the same overrides is not run again.

Everything read here is in the job's own dir (a staging root may have been cleaned up): its
`vertex_status.json`, the step's result `vertex_result.pkl` kept there by collect, and
`.hydra/overrides.yaml`, which Hydra writes for every job.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Dict, List, Optional

from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from .._backends._base import State
from .._shared import _layout
from ._collect import Collected, job_return, read_result
from ._compose import ComposedJob, task_overrides
from ._watch import Outcome

log = logging.getLogger(__name__)


def kept_returns(jobs: List[ComposedJob], local_cwd: str) -> Dict[int, JobReturn]:
    """The JobReturns of jobs that succeeded before, by job number, rebuilt as they were."""
    kept: Dict[int, JobReturn] = {}
    for job in jobs:
        returned = _earlier_success(job, local_cwd)
        if returned is not None:
            kept[job.num] = returned
            log.info(f"\t#{job.num} : succeeded before, its result is reused ({job.local_dir})")
    return kept


def clear_earlier_outcomes(jobs: List[ComposedJob]) -> None:
    """A job about to run again: what an earlier run left in its dir must not pass for its new
    outcome (say, if this run's step is killed and hands back no result)."""
    for job in jobs:
        for name in (_layout.JOB_RESULT_FILE, _layout.JOB_STATUS_FILE, _layout.JOB_VALUE_FILE):
            (job.local_dir / name).unlink(missing_ok=True)


def _earlier_success(job: ComposedJob, local_cwd: str) -> Optional[JobReturn]:
    job_dir = job.local_dir
    if _state(job_dir) != State.SUCCEEDED.value or not _same_overrides(job, job_dir):
        return None
    try:
        result = read_result((job_dir / _layout.JOB_RESULT_FILE).read_bytes())
        if result["status"] is not JobStatus.COMPLETED:
            return None
        return job_return(job, Collected(Outcome(State.SUCCEEDED), result), local_cwd)
    except Exception as e:  # noqa: BLE001 - then the job simply runs again
        log.warning(f"\t#{job.num} : its earlier result cannot be read ({e!r}); it runs again")
        return None


def _state(job_dir: Path) -> Optional[str]:
    try:
        state = json.loads((job_dir / _layout.JOB_STATUS_FILE).read_text(encoding="utf-8"))
        return str(state["state"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _same_overrides(job: ComposedJob, job_dir: Path) -> bool:
    """As Hydra's run_job writes them: the job's hydra.overrides.task."""
    try:
        earlier = OmegaConf.to_container(OmegaConf.load(job_dir / ".hydra" / "overrides.yaml"))
    except OSError:
        return False
    return earlier == task_overrides(job.sweep_config)
