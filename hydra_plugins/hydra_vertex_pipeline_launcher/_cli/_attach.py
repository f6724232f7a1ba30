"""A recorded run picked up by a process that did not launch it: attach is watch + collect,
and cancel the launcher's own cancel, both started from the run's record instead of a launch.

Only a vertex run can be reached this way: a local run's steps end with their launcher.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from .._backends._base import (
    CancelOutcome,
    PipelineBackend,
    RunContext,
    RunNotFound,
    RunStatus,
    State,
    TaskStatus,
)
from .._backends._local import CONSOLES_DIR
from .._launch._collect import LogStreamer, collect
from .._launch._console import JobConsoles
from .._launch._pipeline_run import collect_task
from .._launch._record import RunRecord, attach_command
from .._launch._report import LiveReport, live_report
from .._launch._value import keep as keep_value
from .._launch._value import sent_as_json
from .._launch._watch import Outcome, StatusFiles, WatchedJob, Watcher
from .._shared._storage import open_storage
from ..config import settings_from

log = logging.getLogger(__name__)

CANCELLED_BY_COMMAND = "cancelled with hydra-vertex-pipeline cancel"


@dataclass(frozen=True)
class Reached:
    """A recorded run's backend, and a watcher that writes its status files and collects."""

    record: RunRecord
    run: RunContext
    backend: PipelineBackend
    watcher: Watcher

    @property
    def where(self) -> str:
        return self.record.console_url or self.record.resource_name


def run_context(record: RunRecord) -> RunContext:
    return RunContext(
        run_id=record.run_id,
        pipeline_name=record.pipeline_name,
        job_name=record.job_name,
        local_dir=record.path.parent,
        staging_uri=record.staging_root,
        result_key=record.result_key,
    )


def read_once(record: RunRecord) -> RunStatus:
    """One status read of the whole run."""
    backend = _backend(record)
    try:
        return backend.read_status()
    finally:
        backend.close()


def _backend(record: RunRecord) -> PipelineBackend:
    from .._backends._vertex import VertexBackend

    backend = VertexBackend(settings_from(record.settings), run_context(record))
    # The spec next to the record, not the recorded path: the sweep dir may have moved.
    backend.reattach(record.path.parent / "pipeline.yaml")
    return backend


@contextmanager
def reach(record: RunRecord) -> Iterator[Reached]:
    settings = settings_from(record.settings)
    backend = _backend(record)
    report: Optional[LiveReport] = None
    try:
        storage = open_storage(record.staging_root, settings.request_timeout, settings.staging_root)
        where = record.console_url or record.resource_name
        hint = attach_command(record.record_dir)
        # As the launcher says them: each failed job's console and its failure, as it ends.
        consoles = JobConsoles(
            "failures", record.path.parent / CONSOLES_DIR, prefixed=True, storage=storage
        )

        def on_job_done(job: WatchedJob, task: TaskStatus) -> Outcome:
            if record.hand_built:
                return collect_task(storage, record.path.parent, job, task)
            collected = collect(storage, job, task, f"run {where}", hint, run_key=record.run_key)
            keep_value(job.local_dir, collected.result, sent_as_json(collected.result))
            consoles.ended(job, collected.outcome)
            return collected.outcome

        jobs = [
            WatchedJob(
                num, e.task_name, e.display_name, Path(e.dir), e.log_name, tuple(e.overrides)
            )
            for num, e in sorted(record.jobs.items())
            if not e.superseded_by  # a newer run owns its dir
        ]
        streamer = LogStreamer(storage, settings.log_upload_interval)
        report = live_report(settings.report, record.record_dir, jobs, streamer)
        watcher = Watcher(
            backend,
            StatusFiles(record, jobs),
            on_job_done,
            settings.poll_interval,
            settings.max_poll_interval,
            report or streamer,
            settings.progress_interval,
        )
        yield Reached(record, run_context(record), backend, watcher)
    finally:
        if report is not None:
            report.write()
        backend.close()


def attach(record: RunRecord) -> None:
    """Watches the run until it ends, collecting every job not collected yet; the record and
    status files say how each ended. Ctrl-C stops watching and leaves the run going."""
    with reach(record) as reached:
        # No count yet: the record knows only the jobs collected; the first read counts them all.
        log.info(f"Attached to {reached.where}")
        try:
            reached.watcher.watch()
        except KeyboardInterrupt:
            log.warning(
                f"Stopped watching; {reached.where} goes on. Jobs collected so far are in "
                f"their dirs; to go on: {attach_command(record.record_dir)}"
            )
            raise
        except RunNotFound as e:
            reached.watcher.mark_interrupted(State.FAILED, str(e))
            raise


def cancel(record: RunRecord) -> Optional[CancelOutcome]:
    """The launcher's own cancel: unended jobs become CANCELLED only if Vertex confirms it."""
    from .._launch import _flow

    with reach(record) as reached:
        return _flow.cancel_run(
            reached.backend, reached.watcher, reached.run, reached.where, CANCELLED_BY_COMMAND
        )
