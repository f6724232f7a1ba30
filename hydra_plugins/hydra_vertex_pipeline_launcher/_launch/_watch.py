"""Watch: one status read of the whole run per poll; every status file is written here."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from .._backends._base import PipelineBackend, RunNotFound, RunStatus, State, TaskStatus, utc_now
from .._shared._layout import JOB_STATUS_FILE
from . import _record
from ._record import RunRecord, write_json
from ._signals import raise_pending

log = logging.getLogger(__name__)

BACKOFF_FACTOR = 1.5
# Each read already retries transient errors for request_timeout; this many such failures in a
# row (an outage of many minutes) end the watch.
MAX_FAILED_READS = 5
# Jobs collected at once when several end within one poll.
COLLECT_WORKERS = 8


@dataclass(frozen=True)
class WatchedJob:
    num: int
    task_name: str
    display_name: str
    local_dir: Path
    # Its log file in local_dir, `<Hydra job name>.log`, refreshed while it runs.
    log_name: str = ""
    overrides: Tuple[str, ...] = ()


@dataclass(frozen=True)
class Outcome:
    """What collecting a finished job found: its final state and, if it failed, why."""

    state: State
    error: Optional[str] = None
    # False when its outputs or result could not be fetched (they are still in the staging
    # root, for a later attach).
    collected: bool = True


class StatusFiles:
    """The run's record in the sweep dir, each job's status in its own dir; rewritten on every
    change. A process that attaches to a run starts from the record as it was left."""

    def __init__(self, record: RunRecord, jobs: List[WatchedJob]) -> None:
        self.record = record
        self.jobs = {job.task_name: job for job in jobs}

    def write_job(self, job: WatchedJob, status: TaskStatus, collected: bool = False) -> None:
        """collected: the job's outputs and result are in its dir."""
        write_json(
            job.local_dir / JOB_STATUS_FILE,
            {
                "job_num": job.num,
                "task_name": job.task_name,
                "display_name": job.display_name,
                "state": status.state.value,
                # The run's creation: from here to started (its step got going), it waited.
                "created": self.record.created,
                "started": status.started,
                "ended": status.ended,
                "updated": utc_now(),
                "error": status.error,
            },
        )
        entry = self.record.jobs[job.num]
        entry.state = status.state.value
        entry.collected = collected

    def write_pending(self) -> None:
        """Every job PENDING, before the run is created: its dir claims nothing yet."""
        for job in self.jobs.values():
            self.write_job(job, TaskStatus(State.PENDING))

    def write_run(self, state: State, error: Optional[str] = None) -> None:
        self.record.state = state.value
        self.record.error = error
        self.record.updated = utc_now()
        _record.write(self.record)

    def progress(self) -> str:
        return progress([entry.state for entry in self.record.jobs.values()])


def progress(states: List[str]) -> str:
    """`3/8 succeeded, 4 running, 1 failed`"""
    counts = Counter(states)
    parts = [f"{counts[State.SUCCEEDED.value]}/{len(states)} succeeded"]
    for state in (State.RUNNING, State.PENDING, State.FAILED, State.CANCELLED):
        if counts[state.value]:
            parts.append(f"{counts[state.value]} {state.value.lower()}")
    return ", ".join(parts)


class Watcher:
    def __init__(
        self,
        backend: PipelineBackend,
        files: StatusFiles,
        on_job_done: Callable[[WatchedJob, TaskStatus], Outcome],
        poll_interval: float,
        max_poll_interval: float,
        on_poll: Optional[Callable[[List[WatchedJob]], None]] = None,
        progress_interval: float = 60.0,
    ) -> None:
        self.backend = backend
        self.files = files
        self.on_job_done = on_job_done
        self.on_poll = on_poll
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.progress_interval = progress_interval
        self.seen: Dict[str, TaskStatus] = {}
        # Jobs collected already (by the launcher, or an earlier attach) are not collected again.
        self.done: Dict[str, Outcome] = {
            name: Outcome(State(entry.state))
            for name, job in files.jobs.items()
            if (entry := files.record.jobs[job.num]).collected
        }
        self.run_state = State.PENDING  # as last read
        self.failed_reads = 0
        # Collecting threads record their jobs while an interrupt may be marking the others.
        self._lock = threading.Lock()
        # Collections submitted and not ended yet.
        self._collections = threading.Condition()
        self._in_flight = 0

    def watch(self) -> None:
        """Polls until the run ends; every job is collected exactly once."""
        interval = self.poll_interval
        said_at = time.monotonic()
        while True:
            status = self._read()
            if status is None:
                interval = self.max_poll_interval
            elif status.state.terminal:
                self._apply(status)
                self._finish_unended(status)
                self.files.write_run(status.state, status.error)
                log.info(f"{self._run_id}: {status.state.value}, {self.files.progress()}")
                return
            elif self._apply(status):
                self.files.write_run(status.state)
                log.info(f"{self._run_id}: {self.files.progress()}")
                said_at = time.monotonic()
                interval = self.poll_interval
            else:
                interval = min(interval * BACKOFF_FACTOR, self.max_poll_interval)
            if time.monotonic() - said_at >= self.progress_interval:
                log.info(f"{self._run_id}: still {self.files.progress()}")
                said_at = time.monotonic()
            if self.on_poll is not None:
                self.on_poll(self._running())
            # A long backoff never skips a progress line that is due.
            time.sleep(max(0.0, min(interval, said_at + self.progress_interval - time.monotonic())))
            raise_pending()

    def settle(self) -> None:
        """After a cancel: one more read, so that jobs that ended meanwhile keep their outcome.
        Tasks the cancel ended before they started are left to mark_interrupted, not collected
        one by one (they have nothing to hand back): thousands of them are marked in seconds.
        One that had started is collected: it may have handed back its result as it was
        stopped."""
        try:
            status = self.backend.read_status()
            self.run_state = status.state
            self._apply(status, collect_unstarted=False)
        except Exception as e:  # noqa: BLE001 - the cancel went out; the rest is bookkeeping
            log.warning(f"Could not read {self._run_id} after cancelling it: {e!r}")

    def mark_interrupted(self, state: State, error: str) -> None:
        """Every job not yet ended gets `state`; ended jobs keep theirs, and so does a run that
        had ended."""
        self._wait_for_collections()  # an interrupt may have cut the wait for them short
        with self._lock:
            for name, job in self.files.jobs.items():
                if name not in self.done:
                    seen = self.seen.get(name, TaskStatus(State.PENDING))
                    self.files.write_job(job, TaskStatus(state, seen.started, utc_now(), error))
        if self.run_state.terminal:
            self.files.write_run(self.run_state)
        else:
            self.files.write_run(state, error)

    def mark_unconfirmed(self, error: str) -> None:
        """After a cancel that was not confirmed: every job not yet ended, and the run, keep the
        state last seen (PENDING or RUNNING, with no end time) and say why nothing more is
        known."""
        for name, job in self.files.jobs.items():
            if name not in self.done:
                seen = self.seen.get(name, TaskStatus(State.PENDING))
                self.files.write_job(job, TaskStatus(seen.state, seen.started, None, error))
        self.files.write_run(self.run_state, error)

    @property
    def _run_id(self) -> str:
        return self.files.record.run_id

    def _read(self) -> Optional[RunStatus]:
        """The run's status; None after a failed read, until too many fail in a row."""
        try:
            status = self.backend.read_status()
        except RunNotFound:
            raise  # no waiting brings it back
        except Exception as e:
            self.failed_reads += 1
            if self.failed_reads >= MAX_FAILED_READS:
                raise
            log.warning(
                f"Reading {self._run_id}'s status failed ({e!r}); trying again in "
                f"{self.max_poll_interval:.0f}s ({self.failed_reads}/{MAX_FAILED_READS})"
            )
            return None
        self.failed_reads = 0
        self.files.record.status_reads += 1
        self.run_state = status.state
        return status

    def _apply(self, status: RunStatus, collect_unstarted: bool = True) -> bool:
        changed = False
        ended: List[Tuple[WatchedJob, TaskStatus]] = []
        for name, task in status.tasks.items():
            job = self.files.jobs.get(name)
            if job is None or name in self.done or self.seen.get(name) == task:
                continue
            changed = True
            self.seen[name] = task
            if task.state is State.CANCELLED and task.started is None and not collect_unstarted:
                continue
            if task.state.terminal:
                ended.append((job, task))
            else:
                self.files.write_job(job, task)
        self._finish(ended)
        return changed

    def _finish(self, ended: List[Tuple[WatchedJob, TaskStatus]]) -> None:
        """Collects jobs that ended together in parallel: each collect is a few round trips.

        Each job is recorded by the thread that collected it, as soon as it is. On an interrupt,
        collections already under way finish and are recorded; the others are not started.
        The wait for them is on a condition, never a thread join: an interrupted join (a second
        Ctrl-C) takes a thread for ended while it still runs, and the interpreter would then
        not wait for it at exit.
        """
        pool = ThreadPoolExecutor(COLLECT_WORKERS, thread_name_prefix="collect")
        try:
            futures = [self._submit(pool, job, task) for job, task in ended]
            for future in as_completed(futures):
                future.result()
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            self._wait_for_collections()

    def _submit(self, pool: ThreadPoolExecutor, job: WatchedJob, task: TaskStatus) -> Future[None]:
        with self._collections:
            self._in_flight += 1
        future = pool.submit(self._collect, job, task)
        future.add_done_callback(self._collection_done)  # also when cancelled before it ran
        return future

    def _collection_done(self, future: Future[None]) -> None:
        with self._collections:
            self._in_flight -= 1
            self._collections.notify_all()

    def _wait_for_collections(self) -> None:
        with self._collections:
            while self._in_flight:
                self._collections.wait()

    def _collect(self, job: WatchedJob, task: TaskStatus) -> None:
        """One job collected and recorded; whatever goes wrong fails that job alone."""
        try:
            outcome = self.on_job_done(job, task)
        except Exception as e:  # noqa: BLE001 - the watcher never dies of one job
            log.exception(f"job #{job.num}: collecting it failed")
            error = f"job #{job.num} ({job.display_name}): collecting it failed: {e!r}"
            outcome = Outcome(State.FAILED, error, collected=False)
        self._record(job, task, outcome)

    def _record(self, job: WatchedJob, task: TaskStatus, outcome: Outcome) -> None:
        with self._lock:
            self.done[job.task_name] = outcome
            ended = task.ended or utc_now()
            finished = TaskStatus(outcome.state, task.started, ended, outcome.error)
            self.files.write_job(job, finished, outcome.collected)

    def _finish_unended(self, status: RunStatus) -> None:
        ended = []
        for name, job in self.files.jobs.items():
            if name in self.done:
                continue
            seen = self.seen.get(name, TaskStatus(State.PENDING))
            reason = f"the run ended {status.state.value} while this task was {seen.state.value}"
            if status.error:
                reason += f": {status.error}"
            ended.append((job, TaskStatus(State.FAILED, seen.started, utc_now(), reason)))
        self._finish(ended)

    def _running(self) -> List[WatchedJob]:
        return [
            self.files.jobs[name]
            for name, task in self.seen.items()
            if task.state is State.RUNNING and name not in self.done
        ]
