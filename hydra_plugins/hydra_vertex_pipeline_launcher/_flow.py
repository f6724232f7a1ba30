"""One launch() call: compose -> stage -> build -> submit -> watch -> collect."""
from __future__ import annotations

import logging
import re
import secrets
import signal
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, Iterator, List, Sequence

from hydra.core.utils import JobReturn, configure_log, filter_overrides, setup_globals
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from ._backend import PipelineBackend, State, TaskStatus, make_backend
from ._build import build_pipeline
from ._collect import collect
from ._compose import compose
from ._stage import stage
from ._storage import open_storage
from ._watch import Outcome, StatusFiles, WatchedJob, Watcher
from .config import VertexPipelineLauncherConf

log = logging.getLogger(__name__)

RUNS_DIR = "vertex_pipeline"


def launch(
    settings: VertexPipelineLauncherConf,
    hydra_context: HydraContext,
    task_function: TaskFunction,
    master_config: DictConfig,
    job_overrides: Sequence[Sequence[str]],
    initial_job_idx: int,
) -> List[JobReturn]:
    setup_globals()
    configure_log(master_config.hydra.hydra_logging, master_config.hydra.verbose)
    sweep_dir = Path(str(master_config.hydra.sweep.dir)).absolute()
    jobs = compose(hydra_context, master_config, job_overrides, initial_job_idx)
    run_id = new_run_id(settings.pipeline_name or str(master_config.hydra.job.name))
    local_run_dir = sweep_dir / RUNS_DIR / run_id
    staging_root = settings.staging_root or str(sweep_dir / RUNS_DIR)
    storage = open_storage(f"{staging_root.rstrip('/')}/{run_id}", settings.request_timeout)
    log.info(f"Launching {len(jobs)} jobs as pipeline run {run_id} ({settings.backend} backend)")
    log.info(f"Sweep output dir : {sweep_dir}")
    for job in jobs:
        log.info(f"\t#{job.num} : {' '.join(filter_overrides(job.overrides))}")

    staged = stage(storage, jobs, task_function, hydra_context, settings.backend == "vertex")
    spec_path = local_run_dir / "pipeline.yaml"
    task_jobs = build_pipeline(settings, run_id, storage.uri(""), jobs, staged, spec_path)
    backend = make_backend(settings, console_dir=local_run_dir / "steps")
    submitted = backend.submit(spec_path, run_id)
    log.info(f"Submitted {submitted.resource_name}")
    if submitted.console_url:
        log.info(f"Follow it at {submitted.console_url}")

    by_num = {job.num: job for job in jobs}
    watched = [
        WatchedJob(num, task_name, by_num[num].display_name, by_num[num].local_dir)
        for task_name, num in task_jobs.items()
    ]
    record = {
        "run_id": run_id,
        "backend": settings.backend,
        "resource_name": submitted.resource_name,
        "console_url": submitted.console_url,
        "staging_root": storage.uri(""),
        "pipeline_spec": str(spec_path),
    }
    files = StatusFiles(local_run_dir / "run.json", record, watched)
    returns: Dict[int, JobReturn] = {}
    local_cwd = str(master_config.hydra.runtime.cwd)

    def on_job_done(job: WatchedJob, task: TaskStatus) -> Outcome:
        hint = f"run {submitted.console_url or submitted.resource_name}"
        returns[job.num], outcome = collect(storage, by_num[job.num], task, local_cwd, hint)
        return outcome

    watcher = Watcher(backend, files, on_job_done, settings.poll_interval, settings.max_poll_interval)
    try:
        watcher.watch()
    except KeyboardInterrupt:
        _interrupted(settings, backend, watcher, submitted.console_url or submitted.resource_name)
        raise
    finally:
        backend.close()
    return [returns[job.num] for job in jobs]


def new_run_id(name: str) -> str:
    """A Vertex pipeline job id: ^[a-z][-a-z0-9]{0,127}$, from the app name and the time."""
    slug = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    if not slug or not slug[0].isalpha():
        slug = f"hydra-{slug}".rstrip("-")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    suffix = f"-{stamp}-{secrets.token_hex(3)}"
    return slug[: 128 - len(suffix)].rstrip("-") + suffix


def _interrupted(
    settings: VertexPipelineLauncherConf, backend: PipelineBackend, watcher: Watcher, where: str
) -> None:
    if not settings.cancel_on_interrupt:
        log.warning(
            f"Interrupted: the pipeline run goes on (cancel_on_interrupt=false): {where}. "
            "Its jobs' results will not be collected by this process."
        )
        return
    log.warning(f"Interrupted: cancelling {where}")
    with _ignoring_ctrl_c():
        backend.cancel()
        watcher.mark_interrupted(State.CANCELLED, "cancelled by Ctrl-C in the launcher")
    log.warning(f"Cancelled {where}")


@contextmanager
def _ignoring_ctrl_c() -> Iterator[None]:
    """A second Ctrl-C must not stop the cancel request half-way and leave a paid run going."""
    try:
        previous: Any = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: nothing to guard
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
