"""Resume: a job whose dir holds a collected success for the same overrides is not run again.

Everything read here is on this machine (a staging root may have been cleaned up): the job
dir's `vertex_status.json` and the step's result `vertex_result.pkl` kept there by collect,
whose seal is checked again with the key of the run that it names, from that run's record in
the sweep dir; the result records the overrides its job ran with.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Optional

from hydra.core.utils import JobReturn, JobStatus

from .._backends._base import State
from .._shared import _layout
from .._shared._layout import RUNS_DIR
from .._shared._overrides import task_overrides
from .._shared._result import ResultRefused, SealedResult, peek_run_id, unseal
from ..config import LauncherConfigError
from . import _record
from ._collect import Collected, job_return
from ._compose import ComposedJob
from ._record import RecordError
from ._watch import Outcome

# A Vertex pipeline job id, as new_run_id makes them: a plain name, never a path.
RUN_ID = re.compile(r"[a-z][-a-z0-9]{0,127}")

log = logging.getLogger(__name__)


def kept_returns(jobs: List[ComposedJob], local_cwd: str, record_dir: Path) -> Dict[int, JobReturn]:
    """The JobReturns of jobs that succeeded before, by job number, rebuilt as they were.

    record_dir: the sweep dir (or single run's dir) whose run records hold the result keys.
    """
    kept: Dict[int, JobReturn] = {}
    for job in jobs:
        returned = _earlier_success(job, local_cwd, record_dir)
        if returned is not None:
            kept[job.num] = returned
            log.info(f"\t#{job.num} : succeeded before, its result is reused ({job.local_dir})")
    return kept


def refuse_running(jobs: List[ComposedJob], record_dir: Path) -> None:
    """Raises LauncherConfigError, before anything is staged, when a job about to run again is
    still being run by the newest run recorded for its dir: a vertex run not seen to end (a
    launcher killed, or left with wait=false). Two runs would race in one dir. A local run
    cannot outlive its launcher, so its record never stops a resume."""
    try:
        records, _ = _record.read_all(_record.find_runs(record_dir))
    except RecordError:
        return  # nothing recorded here yet
    by_dir = {os.path.normpath(os.path.abspath(job.local_dir)): job for job in jobs}
    running = [
        f"#{by_dir[entry.dir].num} ({entry.state} in run {record.run_id})"
        for record in records
        if record.backend == "vertex" and not State(record.state).terminal
        for entry in record.jobs.values()
        if entry.dir in by_dir and not entry.superseded_by and not State(entry.state).terminal
    ]
    if running:
        raise LauncherConfigError(
            f"hydra.launcher.resume=true would run again jobs that a recorded run may still be "
            f"running: {', '.join(running)}. Watch it to its end and collect it with\n  "
            f"{_record.attach_command(record_dir)}\n(or stop it with hydra-vertex-pipeline "
            "cancel), then resume."
        )


EARLIER_SUFFIX = ".earlier"


@contextmanager
def earlier_outcomes_set_aside(jobs: List[ComposedJob]) -> Iterator[None]:
    """A job about to run again: what an earlier run left in its dir must not pass for its new
    outcome (say, if this run's step is killed and hands back no result). Set aside while the
    run is created and watched; put back if the backend refused to create it (nothing ran),
    else dropped."""
    names = (_layout.JOB_RESULT_FILE, _layout.JOB_STATUS_FILE, _layout.JOB_VALUE_FILE)
    for job in jobs:
        for name in names:
            earlier = job.local_dir / name
            if earlier.exists():
                os.replace(earlier, earlier.with_name(name + EARLIER_SUFFIX))
    try:
        yield
    except LauncherConfigError:
        for job in jobs:
            for name in names:
                aside = job.local_dir / (name + EARLIER_SUFFIX)
                if aside.exists():
                    os.replace(aside, job.local_dir / name)
        raise
    finally:
        for job in jobs:
            for name in names:
                (job.local_dir / (name + EARLIER_SUFFIX)).unlink(missing_ok=True)


def _earlier_success(job: ComposedJob, local_cwd: str, record_dir: Path) -> Optional[JobReturn]:
    job_dir = job.local_dir
    if _state(job_dir) != State.SUCCEEDED.value:
        return None
    try:
        result = verified((job_dir / _layout.JOB_RESULT_FILE).read_bytes(), record_dir)
    except FileNotFoundError:
        return None
    except (OSError, RecordError, ResultRefused) as e:
        log.warning(f"\t#{job.num} : its earlier result is not used ({e}); it runs again")
        return None
    if result.status != JobStatus.COMPLETED.name:
        return None
    if result.overrides != task_overrides(job.sweep_config):
        log.info(f"\t#{job.num} : its dir holds the result of other overrides; it runs again")
        return None
    returned, outcome = job_return(job, Collected(Outcome(State.SUCCEEDED), result), local_cwd)
    if outcome.state is not State.SUCCEEDED:
        log.warning(f"\t#{job.num} : {outcome.error}; it runs again")
        return None
    return returned


def verified(raw: bytes, record_dir: Path) -> SealedResult:
    """The kept result, its seal checked with the key of the run it names, recorded here."""
    run_id = peek_run_id(raw)
    if not RUN_ID.fullmatch(run_id):
        raise ResultRefused(f"it names no run recorded here ({run_id!r})")
    result = unseal(raw, _result_key(record_dir / RUNS_DIR / run_id / _record.RECORD_FILE))
    if result.run_id != run_id:
        raise ResultRefused(f"it is sealed as a result of run {result.run_id}")
    return result


@functools.lru_cache(maxsize=64)
def _result_key(record_path: Path) -> str:
    """Read once per run, not once per job: a run's record lists all its jobs, and its key
    never changes."""
    return _record.read(record_path).result_key


def _state(job_dir: Path) -> Optional[str]:
    try:
        state = json.loads((job_dir / _layout.JOB_STATUS_FILE).read_text(encoding="utf-8"))
        return str(state["state"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
