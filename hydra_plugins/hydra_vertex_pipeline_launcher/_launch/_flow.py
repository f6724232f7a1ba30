"""One launch() call: compose -> stage -> build -> submit -> watch -> collect."""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import signal
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from hydra.core.utils import (
    JobReturn,
    JobStatus,
    configure_log,
    filter_overrides,
    setup_globals,
)
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from .._backends._base import (
    CancelOutcome,
    PipelineBackend,
    RunContext,
    RunLocation,
    State,
    TaskStatus,
    utc_now,
)
from .._backends._choice import make_backend
from .._backends._local import CONSOLES_DIR
from .._shared._layout import RUNS_DIR
from .._shared._process_tree import process_identity
from .._shared._result import RunKey, new_key
from .._shared._storage import Storage, open_storage
from ..config import (
    IN_STEP_ENV,
    LauncherConfigError,
    VertexPipelineLauncherConf,
    local_max_parallel,
    unpinned_image_warning,
)
from . import _resume
from ._collect import LogStreamer, collect, composed_return, job_return
from ._command import plan as command_plan
from ._compose import ComposedJob, compose, compose_single
from ._console import JobConsoles, console_mode, report_failures
from ._job_settings import settings_per_job
from ._record import JobEntry, RunRecord, attach_command, reach_settings
from ._signals import StopSignal, shielded_from_signals, signals_as_interrupt
from ._stage import pack, stage_readable, upload
from ._value import keep as keep_value
from ._watch import Outcome, StatusFiles, WatchedJob, Watcher

log = logging.getLogger(__name__)

# Vertex's pipeline job ids match ^[a-z][-a-z0-9]{0,127}$, but its API asks for fewer than 128.
RUN_ID_LIMIT = 127


@dataclass(frozen=True)
class _Launch:
    """What Hydra hands a launch, the same for each of its pipeline runs."""

    settings: VertexPipelineLauncherConf
    hydra_context: HydraContext
    task_function: TaskFunction
    # A sweep's master config, or a single run's own config.
    config: DictConfig
    # A run without -m: its console shows in full, unprefixed.
    single: bool = False


def launch(
    settings: VertexPipelineLauncherConf,
    hydra_context: HydraContext,
    task_function: TaskFunction,
    master_config: DictConfig,
    job_overrides: Sequence[Sequence[str]],
    initial_job_idx: int,
) -> List[JobReturn]:
    """A sweep's batch of jobs as one pipeline run, recorded in the sweep dir."""
    if os.environ.get(IN_STEP_ENV):
        # e.g. a command (execution=command) that sweeps: each job would launch a run again.
        raise LauncherConfigError(
            "A pipeline step started a multirun with this launcher, which would launch "
            "pipeline runs from inside each step, without end. Remove -m (and hydra.mode="
            "MULTIRUN) from the app's command (hydra.launcher.command)."
        )
    setup_globals()
    configure_log(master_config.hydra.hydra_logging, master_config.hydra.verbose)
    jobs = compose(hydra_context, master_config, job_overrides, initial_job_idx)
    sweep_dir = Path(str(master_config.hydra.sweep.dir)).absolute()
    request = _Launch(settings, hydra_context, task_function, master_config)
    returns = _launch(request, jobs, sweep_dir)
    return [returns[job.num] for job in jobs]


def launch_single(
    settings: VertexPipelineLauncherConf,
    hydra_context: HydraContext,
    task_function: TaskFunction,
    config: DictConfig,
) -> JobReturn:
    """A run without -m as a one-step pipeline run, recorded in its own run dir."""
    job = compose_single(config)
    request = _Launch(settings, hydra_context, task_function, config, single=True)
    return _launch(request, [job], job.local_dir)[job.num]


def _launch(request: _Launch, jobs: List[ComposedJob], record_dir: Path) -> Dict[int, JobReturn]:
    """record_dir: the sweep dir, or a single run's own dir."""
    local_cwd = str(request.config.hydra.runtime.cwd)
    kept = _resume.kept_returns(jobs, local_cwd, record_dir) if request.settings.resume else {}
    to_run = [job for job in jobs if job.num not in kept]
    if request.settings.resume:
        _resume.refuse_running(to_run, record_dir)
    if not to_run:
        log.info(
            f"All {len(jobs)} jobs succeeded in an earlier run (hydra.launcher.resume=true): "
            "no pipeline run is created"
        )
        return kept
    if kept:
        log.info(
            f"Resuming: {len(kept)} of {len(jobs)} jobs succeeded in an earlier run; "
            f"{len(to_run)} run now"
        )
    return {**kept, **_run_pipeline(request, to_run, record_dir)}


def _run_pipeline(
    request: _Launch, jobs: List[ComposedJob], record_dir: Path
) -> Dict[int, JobReturn]:
    settings = request.settings
    job_settings = settings_per_job(settings, jobs)
    run = new_run(settings, str(request.config.hydra.job.name), record_dir)
    backend = make_backend(settings, run)
    try:
        storage = open_storage(run.staging_uri, settings.request_timeout, settings.staging_root)
        from ._build import build_pipeline  # kfp: only when a launch needs it

        in_container = not backend.steps_share_filesystem
        # Packed and built before anything is written: what they refuse leaves no half run.
        if settings.execution == "command":
            plan = command_plan(settings, jobs, in_container, request.task_function)
            staged = stage_readable(jobs, plan)
        else:
            ship_code = in_container and settings.ship_code
            staged = pack(
                jobs, request.task_function, request.hydra_context, in_container, ship_code
            )
        with tempfile.TemporaryDirectory() as scratch:
            compiled = Path(scratch) / run.spec_path.name
            task_jobs = build_pipeline(
                settings, run.pipeline_name, run.staging_uri, jobs, staged, compiled, job_settings,
                run.result_key,
            )  # fmt: skip
            storage.check_access()
            run.spec_path.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(compiled), run.spec_path)
        # Only now: whatever a setting makes packing, building or the bucket refuse comes first.
        _log_plan(settings, run, jobs)
        if settings.dry_run:
            from ._plan import end_dry_run

            end_dry_run(settings, run, jobs, job_settings, staged, task_jobs)
        upload(storage, staged)
        staged.blobs.clear()  # uploaded: not held while the run is watched (KiB a job)
        by_num = {job.num: job for job in jobs}
        watched = [_watched(by_num[num], task) for task, num in task_jobs.items()]
        local_cwd = str(request.config.hydra.runtime.cwd)
        # Only now: a relaunch refused while packing, building, staging or creating keeps the
        # earlier outcomes (and resume finds them again).
        with _resume.earlier_outcomes_set_aside(jobs):
            return _submit_and_watch(
                settings, backend, storage, run, watched, by_num, local_cwd, request.single
            )
    finally:
        backend.close()


def _watched(job: ComposedJob, task_name: str) -> WatchedJob:
    return WatchedJob(
        num=job.num,
        task_name=task_name,
        display_name=job.display_name,
        local_dir=job.local_dir,
        log_name=f"{job.job_name}.log",
        overrides=tuple(job.overrides),
    )


def _submit_and_watch(
    settings: VertexPipelineLauncherConf,
    backend: PipelineBackend,
    storage: Storage,
    run: RunContext,
    watched: List[WatchedJob],
    by_num: Dict[int, ComposedJob],
    local_cwd: str,
    single: bool,
) -> Dict[int, JobReturn]:
    where = backend.location.console_url or backend.location.resource_name
    returns: Dict[int, JobReturn] = {}
    attach_hint = attach_command(run.record_dir) if backend.outlives_launcher else ""
    run_key = RunKey(run.run_id, run.result_key)
    streamer = None
    if not backend.steps_share_filesystem:
        streamer = LogStreamer(storage, settings.log_upload_interval)
    consoles = JobConsoles(
        console_mode(settings.console, single),
        run.local_dir / CONSOLES_DIR,
        prefixed=not single,
        storage=None if backend.steps_share_filesystem else storage,
        fetch_interval=settings.log_upload_interval,
        then=streamer,
    )

    def on_job_done(job: WatchedJob, task: TaskStatus) -> Outcome:
        collected = collect(storage, job, task, f"run {where}", attach_hint, run_key=run_key)
        returns[job.num], outcome = job_return(by_num[job.num], collected, local_cwd)
        keep_value(job.local_dir, collected.result, returns[job.num]._return_value)
        consoles.ended(job, outcome)
        return outcome

    record = submit_and_watch(settings, backend, run, watched, on_job_done, consoles)
    if not settings.wait:
        return _detached(record, by_num, local_cwd)
    report_failures(watched, run.record_dir)
    return returns


def submit_and_watch(
    settings: VertexPipelineLauncherConf,
    backend: PipelineBackend,
    run: RunContext,
    watched: List[WatchedJob],
    on_job_done: Callable[[WatchedJob, TaskStatus], Outcome],
    streamer: Optional[Callable[[List[WatchedJob]], None]] = None,
    hand_built: bool = False,
) -> RunRecord:
    """Records the run, submits run.spec_path and, with settings.wait, watches it to its end
    (on_job_done as each task ends); Ctrl-C, SIGTERM or SIGHUP cancel it (as settings say)."""
    from ._report import live_report

    where = backend.location.console_url or backend.location.resource_name
    record = new_record(settings, run, backend.location, watched)
    record.hand_built = hand_built
    if not backend.outlives_launcher:
        record.launcher = process_identity(os.getpid())  # its steps live as long as it does
    files = StatusFiles(record, watched)
    report = live_report(settings.report, run.record_dir, watched, streamer)
    watcher = Watcher(
        backend,
        files,
        on_job_done,
        settings.poll_interval,
        settings.max_poll_interval,
        report or streamer,
        settings.progress_interval,
    )
    try:
        with signals_as_interrupt():
            # Recorded before the create: the sweep dir alone must lead to the run.
            files.write_pending()
            files.write_run(State.PENDING)
            backend.submit(run.spec_path)
            log.info(f"Submitted {backend.location.resource_name}")
            if backend.location.console_url:
                log.info(f"Follow it at {backend.location.console_url}")
            if settings.wait:
                watcher.watch()
    except KeyboardInterrupt as interrupt:
        # Bounded (the cancel and one read, each within request_timeout): a further Ctrl-C
        # must not leave the run going, nor its jobs' states unwritten.
        with shielded_from_signals():
            _interrupted(settings, backend, watcher, run, where)
        if isinstance(interrupt, StopSignal):
            # Handled and said: end as that signal's default action would, with no traceback.
            raise SystemExit(128 + interrupt.signum) from None
        if not hand_built:  # a Hydra app's launch: Ctrl-C said all there is, as a shell says it
            raise SystemExit(128 + signal.SIGINT) from None
        raise
    except LauncherConfigError as refused:
        # The backend refused the run: nothing was created, and its record says so.
        record.never_created = True
        watcher.mark_interrupted(State.FAILED, f"the run was not created: {refused}")
        raise
    except Exception:
        _watch_failed(backend, watcher, run, where)
        raise
    finally:
        if report is not None:
            report.write()  # as the run ended, or was left
    return record


def new_record(
    settings: VertexPipelineLauncherConf,
    run: RunContext,
    location: RunLocation,
    watched: List[WatchedJob],
) -> RunRecord:
    """What the record of a new run holds before it is created."""
    return RunRecord(
        path=run.record_path,
        run_id=run.run_id,
        backend=settings.backend,
        resource_name=location.resource_name,
        console_url=location.console_url,
        staging_root=run.staging_uri,
        pipeline_spec=str(run.spec_path),
        pipeline_name=run.pipeline_name,
        job_name=run.job_name,
        settings=reach_settings(settings),
        created=utc_now(),
        max_parallel=_cap(settings),
        result_key=run.result_key,
        jobs={
            job.num: JobEntry(
                overrides=list(job.overrides),
                task_name=job.task_name,
                display_name=job.display_name,
                dir=str(job.local_dir),
                log_name=job.log_name,
            )
            for job in watched
        },
    )


def _cap(settings: VertexPipelineLauncherConf) -> Optional[int]:
    """Steps of the run that may run at once: the local backend always has a number of lanes."""
    return local_max_parallel(settings) if settings.backend == "local" else settings.max_parallel


@dataclass(frozen=True)
class Detached:
    """The return value of a job launched with hydra.launcher.wait=false: not known here."""

    run_id: str
    attach_command: str


def _detached(
    record: RunRecord, by_num: Dict[int, ComposedJob], local_cwd: str
) -> Dict[int, JobReturn]:
    """JobReturns for a run left to go on: COMPLETED, because Hydra's basic sweeper reads each
    return_value (a FAILED one would raise), with a Detached value, not a result; the job dirs
    stay PENDING until `attach` collects them."""
    command = attach_command(record.record_dir)
    log.info(
        f"Not waiting for {record.run_id} (hydra.launcher.wait=false). Its jobs' outputs and "
        f"results stay in {record.staging_root} until you collect them with:\n  {command}"
    )
    returns = {}
    for num, job in by_num.items():
        returned = composed_return(job, local_cwd, ran_in_output_dir=job.chdir)
        returned.status = JobStatus.COMPLETED
        returned.return_value = Detached(record.run_id, command)
        returns[num] = returned
    return returns


def new_run(settings: VertexPipelineLauncherConf, job_name: str, record_dir: Path) -> RunContext:
    """A new run of the pipeline named by settings (else job_name), recorded in record_dir (the
    sweep dir, or a single run's own dir)."""
    pipeline_name = pipeline_slug(settings.pipeline_name or job_name)
    run_id = new_run_id(pipeline_name)
    staging_root = settings.staging_root or str(record_dir / RUNS_DIR)
    return RunContext(
        run_id=run_id,
        pipeline_name=pipeline_name,
        job_name=job_name,
        local_dir=record_dir / RUNS_DIR / run_id,
        staging_uri=f"{staging_root.rstrip('/')}/{run_id}",
        result_key=new_key(),
    )


def pipeline_slug(name: str) -> str:
    """The name lowercased to [a-z0-9-], starting with a letter, as Vertex ids must."""
    slug = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    slug = slug if slug[:1].isalpha() else f"hydra-{slug}".rstrip("-")
    return slug[:RUN_ID_LIMIT].rstrip("-")


def new_run_id(pipeline_name: str) -> str:
    """A Vertex pipeline job id, at most RUN_ID_LIMIT characters: the pipeline's name and the
    time."""
    suffix = f"-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    return pipeline_name[: RUN_ID_LIMIT - len(suffix)].rstrip("-") + suffix


def _log_plan(
    settings: VertexPipelineLauncherConf, run: RunContext, jobs: List[ComposedJob]
) -> None:
    count = f"{len(jobs)} job" + ("" if len(jobs) == 1 else "s")
    log.info(f"Launching {count} as pipeline run {run.run_id} ({settings.backend} backend)")
    log.info(f"{'Dry run: would stage' if settings.dry_run else 'Staging'} to {run.staging_uri}")
    unpinned = unpinned_image_warning(str(settings.image)) if settings.backend == "vertex" else None
    if unpinned:
        log.warning(unpinned)
    for job in jobs:
        log.info(f"\t#{job.num} : {' '.join(filter_overrides(job.overrides))}")


def _interrupted(
    settings: VertexPipelineLauncherConf,
    backend: PipelineBackend,
    watcher: Watcher,
    run: RunContext,
    where: str,
) -> None:
    if backend.outlives_launcher and not settings.cancel_on_interrupt:
        log.warning(
            f"Interrupted. The pipeline run goes on (cancel_on_interrupt=false): {where}. "
            f"This process will not collect its jobs' results; {run.record_path} "
            "names the run and its staging root."
        )
        return
    log.warning(f"Interrupted: cancelling {where}")
    cancel_run(backend, watcher, run, where, "cancelled: the launcher was interrupted")


def cancel_run(
    backend: PipelineBackend, watcher: Watcher, run: RunContext, where: str, reason: str
) -> Optional[CancelOutcome]:
    """Cancels the run; unended jobs become CANCELLED (with reason) only when the backend
    confirmed the cancel or the run had ended. None: not confirmed (the files say so)."""
    outcome = _cancel(backend, watcher, run, where)
    if outcome is None or outcome is CancelOutcome.NEVER_CREATED:
        return outcome
    watcher.settle()
    watcher.mark_interrupted(State.CANCELLED, reason)
    if outcome is CancelOutcome.CONFIRMED:
        log.warning(f"Cancelled {where}")
    else:
        log.warning(f"{where} had already ended: nothing was cancelled")
    return outcome


def _watch_failed(backend: PipelineBackend, watcher: Watcher, run: RunContext, where: str) -> None:
    if backend.outlives_launcher:
        log.error(
            f"Submitting or watching {where} failed; if it was created, it goes on. "
            f"{run.record_path} names the run and its staging root, where each "
            "job's outputs and result land; to watch and collect it again: "
            f"{attach_command(run.record_dir)}"
        )
        return
    if _cancel(backend, watcher, run, where) is not None:
        watcher.mark_interrupted(State.CANCELLED, "cancelled: the launcher failed")


def _cancel(
    backend: PipelineBackend, watcher: Watcher, run: RunContext, where: str
) -> Optional[CancelOutcome]:
    """What the backend said of the cancel; None when it could not confirm it (then the status
    files and the log say so). A run never created is recorded here."""
    try:
        with shielded_from_signals():
            outcome = backend.cancel()
    except Exception as e:  # noqa: BLE001 - reported; the interrupt or failure goes on up
        reason = (
            f"the launcher could not confirm that the run was cancelled ({e!r}); it may still "
            f"be running: {where}"
        )
        watcher.mark_unconfirmed(reason)
        log.error(
            f"Could not confirm the cancel of {backend.location.resource_name} ({e!r}). "
            f"It may still be running: check or cancel it at {where}. {run.record_path} "
            "keeps each job's last seen state."
        )
        return None
    if outcome is CancelOutcome.NEVER_CREATED:
        reason = "the launcher was interrupted before the run was created"
        watcher.files.record.never_created = True
        watcher.mark_interrupted(State.CANCELLED, reason)
        log.warning(f"Interrupted before {where} was created: nothing ran, nothing to cancel")
    return outcome
