"""The step's payload mode: the job's task function, as pickled by the launcher, runs here
through Hydra's run_job, with Hydra's state restored."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import cloudpickle
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, run_job, setup_globals
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, read_write

from .._shared import _layout, _payload
from .._shared._app_code import AppCode
from .._shared._app_code import unpack as unpack_code
from .._shared._app_main import MainScript, import_main
from .._shared._faults import JobExited, JobRaisedBaseException, failure_trace
from .._shared._job_dirs import DirKeys, job_output_dir
from .._shared._overrides import task_overrides
from .._shared._storage import Storage
from ._handback import HandBack, StepOutcome, same_dir, streaming_log
from ._stray_files import snapshot, stray_warning

log = logging.getLogger(__name__)


class PayloadJob:
    """The job's task runs in this process, on its main thread."""

    def __init__(self, storage: Storage, args: argparse.Namespace, hand_back: HandBack) -> None:
        self.storage = storage
        self.args = args
        self.hand_back = hand_back

    def run(self) -> StepOutcome:
        return _run_staged_job(self.storage, self.args, self.hand_back)

    def halt(self) -> Tuple[str, bool]:
        """Where the task is; the step's process ending stops it, and the processes it started
        are stopped here."""
        frame = sys._current_frames().get(threading.main_thread().ident or 0)
        where = "".join(traceback.format_stack(frame)) if frame else "(unknown)\n"
        _stop_started_processes()
        output_dir = self.hand_back.output_dir
        return where, output_dir is not None and same_dir(os.getcwd(), output_dir)

    def log_error(self, text: str) -> None:
        # Hydra set up the job's logging in this process.
        logging.getLogger(self.hand_back.job_name).error(text)


def _stop_started_processes() -> None:
    """What the task started (a data loader's workers, a shell command) ends with it: SIGKILL to
    every other process of the step's process group. Every backend starts a step as the leader
    of its own session; a step that does not lead its group shares it with others, and sends
    nothing. Read from /proc (Linux, as in every image); elsewhere they outlive the step."""
    me = os.getpid()
    proc = Path("/proc")
    if not hasattr(os, "killpg") or os.getpgrp() != me or not proc.is_dir():
        return
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            # After the command's name in parentheses: state, parent, process group, ...
            group = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2])
            if group == me:
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or not ours to read


def _run_staged_job(storage: Storage, args: argparse.Namespace, hand_back: HandBack) -> StepOutcome:
    """Restores what the launcher staged and runs the job through Hydra's run_job."""
    _check_python(args.python)
    shared = _load_checked(storage, _layout.SHARED_PAYLOAD, args.shared_digest)
    job = _load_checked(storage, _layout.job_payload(args.job), args.job_digest)
    main_problem = _restore_main(_with_shipped_code(storage, shared))
    parts, shared_problem = _unpack(shared, main_problem)
    job_parts, job_problem = _unpack(job, main_problem)
    sweep_config: DictConfig = job_parts["sweep_config"]
    dir_keys: DirKeys = job_parts["dir_keys"]
    setup_globals()
    _restore_singletons(parts["singleton_state"])
    if shared["in_container"]:
        _map_paths_into_container(sweep_config, dir_keys[0])
    HydraConfig.instance().set_config(sweep_config)
    # As Hydra does in its own process before the sweep: the root logger's level and console.
    configure_log(sweep_config.hydra.hydra_logging, sweep_config.hydra.verbose)
    output_dir = job_output_dir(sweep_config, dir_keys)
    hand_back.output_dir = output_dir
    hand_back.job_name = str(sweep_config.hydra.job.name)
    hand_back.overrides = task_overrides(sweep_config)
    task_function = _exit_as_failure(parts["task_function"])
    problem = shared_problem or job_problem
    if problem:
        task_function = _warning_first(task_function, problem)
    live_log = _layout.job_live_log(args.job)
    working_dir = Path(os.getcwd())
    watched = snapshot(working_dir, output_dir) if shared["in_container"] else None
    with streaming_log(storage, hand_back, live_log, args.log_upload_interval):
        job_return = _run(parts["hydra_context"], task_function, sweep_config, dir_keys)
        trace = failure_trace(job_return)
        stray = stray_warning(watched, working_dir, output_dir)
        if stray:  # into the job's log, which Hydra's job logging still writes
            logging.getLogger(hand_back.job_name).warning(stray)
    # A problem is likely why a job failed (`__main__.X` not found): said in the terminal, apart
    # from the traceback, whose last line stays the exception's.
    said = (problem,) if trace and problem else ()
    return StepOutcome(
        status=job_return.status,
        return_value=job_return._return_value,
        traceback=trace,
        ran_in_output_dir=same_dir(job_return.working_dir, output_dir),
        warnings=said + ((stray,) if stray else ()),
    )


def _restore_singletons(state: Dict[str, Any]) -> None:
    """Hydra's Singleton.set_state, but plugins this interpreter has scanned already (a warm
    step's server did, before it forked) are kept: set_state would scan them again."""
    scanned = Singleton._instances.get(Plugins)
    if scanned is not None:
        state["instances"][Plugins] = scanned
    Singleton.set_state(state)


def _with_shipped_code(storage: Storage, shared: Dict[str, Any]) -> Optional[MainScript]:
    """Puts the app's shipped code in place; the app's main, as found among it if it is."""
    main: Optional[MainScript] = shared["main"]
    code: Optional[AppCode] = shared.get("code")
    main_file = unpack_code(storage, code) if code is not None else None
    if main is not None and main_file is not None:
        return dataclasses.replace(main, path=str(main_file))
    return main


def _restore_main(main: Optional[MainScript]) -> Optional[str]:
    """Makes the app's main this process's __main__; why it could not, if it could not."""
    if main is None:
        return "the launcher named no main script of the app"
    try:
        return import_main(main)
    except Exception:  # noqa: BLE001 - the job may still run from what was pickled by value
        return f"running the app's {main.describe()} here failed:\n{traceback.format_exc()}"


def _unpack(payload: Dict[str, Any], main_problem: Optional[str]) -> Tuple[Dict[str, Any], str]:
    """By reference to the app's main when it is here; else by value, with the reason why."""
    by_reference = payload["by_reference"]
    if by_reference is None:
        return cloudpickle.loads(payload["by_value"]), ""
    problem = main_problem
    if problem is None:
        try:
            return cloudpickle.loads(by_reference), ""
        except Exception:  # noqa: BLE001 - e.g. a name defined only under `if __name__ == ...`
            problem = f"the app's names could not all be found here:\n{traceback.format_exc()}"
    warning = (
        f"{problem}. Running the task as the launcher pickled it by value: names of the app's "
        "main module (`__main__.X`) do not resolve in this job. Put the app's script in the "
        "image's working dir, as in the launch dir, to run it as it runs in-process."
    )
    print(warning, file=sys.stderr)
    return cloudpickle.loads(payload["by_value"]), warning


def _exit_as_failure(task_function: TaskFunction) -> TaskFunction:
    """sys.exit(n) in a task: Hydra's run_job lets SystemExit (and every other BaseException
    that is not an Exception, such as asyncio.CancelledError) through, which would end the step
    before its outputs and result are handed back. As an exception, the job fails like any
    other, its files kept; sys.exit(0) (or no status) is a normal end with no return value."""

    def task_that_may_exit(cfg: DictConfig) -> Any:
        try:
            return task_function(cfg)
        except SystemExit as e:
            if e.code is None or e.code == 0:
                return None
            if isinstance(e.code, int):
                raise JobExited(f"the job exited with status {e.code}") from e
            raise JobExited(f"the job exited with status 1: {e.code}") from e
        except Exception:
            raise
        except BaseException as e:  # noqa: BLE001 - named, as an exception run_job catches
            raise JobRaisedBaseException.naming(e) from e

    return task_that_may_exit


def _warning_first(task_function: TaskFunction, warning: str) -> TaskFunction:
    """The job's log, which Hydra sets up inside run_job, starts with the warning."""

    def task_after_warning(cfg: DictConfig) -> Any:
        log.warning(warning)
        return task_function(cfg)

    return task_after_warning


def _check_python(launcher_python: Optional[str]) -> None:
    """cloudpickle carries code objects, which only the same Python minor version can load."""
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if launcher_python and launcher_python != here:
        raise RuntimeError(
            f"the launcher pickled this job with Python {launcher_python}, but this image runs "
            f"Python {here}: build the image from python:{launcher_python} (or launch with {here})"
        )


def _load_checked(storage: Storage, name: str, digest: str) -> Dict[str, Any]:
    """Unpickles only what the launcher staged: its digest came in the step's arguments."""
    return _payload.loads(_payload.read_checked(storage, name, digest))


def _map_paths_into_container(sweep_config: DictConfig, dir_key: str) -> None:
    """The submitter's paths do not exist here: the container's working dir stands for its cwd."""
    submitter_cwd = Path(str(sweep_config.hydra.runtime.cwd))
    jobs_dir = Path(str(OmegaConf.select(sweep_config, dir_key)))
    if jobs_dir.is_absolute():
        inside = submitter_cwd in jobs_dir.parents
        jobs_dir = jobs_dir.relative_to(submitter_cwd if inside else jobs_dir.anchor)
    # Hydra marks these nodes read-only one by one.
    parent_key, _, leaf = dir_key.rpartition(".")
    parent = OmegaConf.select(sweep_config, parent_key)
    with read_write(parent), read_write(sweep_config.hydra.runtime):
        parent[leaf] = str(jobs_dir)
        sweep_config.hydra.runtime.cwd = os.getcwd()


def _run(
    hydra_context: HydraContext,
    task_function: TaskFunction,
    sweep_config: DictConfig,
    dir_keys: DirKeys,
) -> JobReturn:
    try:
        return run_job(
            hydra_context=hydra_context,
            task_function=task_function,
            config=sweep_config,
            job_dir_key=dir_keys[0],
            job_subdir_key=dir_keys[1],
        )
    except Exception as e:  # noqa: BLE001 - Hydra itself failed around the task: still a result
        return JobReturn(
            task_name=str(sweep_config.hydra.job.name),
            working_dir=os.getcwd(),
            status=JobStatus.FAILED,
            _return_value=e,
        )
