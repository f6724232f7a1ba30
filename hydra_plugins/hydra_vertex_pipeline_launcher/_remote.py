"""The step: what each pipeline task runs.

`python -m hydra_plugins.hydra_vertex_pipeline_launcher._remote` in the container:

Fetches and checks the payload, restores Hydra's state, runs the job, and hands back its output
dir and result through the staging root, also when the task raised or exited, and when it ran
past its time limit (--timeout). Exits non-zero when the job failed.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import pickle
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import cloudpickle
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, run_job, setup_globals
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, read_write

from . import _layout, _payload
from ._app_main import MainScript, import_main
from ._compose import DirKeys, job_output_dir
from ._faults import JobExited, JobTimedOut
from ._storage import Storage, open_storage

# Not __name__: this module runs as __main__.
log = logging.getLogger("hydra_plugins.hydra_vertex_pipeline_launcher._remote")

# The exit status of a step stopped at its time limit, as coreutils' `timeout` uses.
TIMED_OUT_EXIT = 124


class PayloadDigestMismatch(RuntimeError):
    pass


@dataclass
class StepOutcome:
    """What a step hands back: the launcher rebuilds the JobReturn around it."""

    status: JobStatus
    return_value: Any
    traceback: str
    ran_in_output_dir: bool


def main(argv: Optional[List[str]] = None) -> int:
    args = _parse(argv)
    storage = open_storage(args.run_root, args.request_timeout)
    hand_back = HandBack(storage, args.job, _start_attempt(storage, args.job))
    if args.timeout:
        _stop_at_time_limit(hand_back, args.timeout)
    try:
        outcome = _run_staged_job(storage, args, hand_back)
    except Exception as e:  # noqa: BLE001 - the launcher must learn why, not just an exit code
        trace = traceback.format_exc()
        print(trace, file=sys.stderr)
        outcome = StepOutcome(JobStatus.FAILED, e, trace, ran_in_output_dir=False)
    hand_back.finish(outcome)
    return 0 if outcome.status is JobStatus.COMPLETED else 1


class HandBack:
    """Mirrors the job's output dir and writes its result, exactly once: at the job's end or
    at its time limit, whichever comes first."""

    def __init__(self, storage: Storage, num: int, attempt: int) -> None:
        self.storage = storage
        self.num = num
        self.attempt = attempt
        # Known once the job's config is restored.
        self.output_dir: Optional[Path] = None
        self.job_name = __name__
        # Held through the whole hand-back: the time limit ends the process while holding it,
        # so a job that ends meanwhile waits here instead of handing back a second outcome.
        self._lock = threading.Lock()
        self._handed_back = False

    def finish(self, outcome: StepOutcome) -> bool:
        """False when the other side handed back first."""
        with self._lock:
            if self._handed_back:
                return False
            self._handed_back = True
            output_dir = self.output_dir
            upload_error = (
                _upload_outputs(self.storage, output_dir, self.num) if output_dir else None
            )
            result = _result_bytes(outcome, self.attempt, upload_error)
            self.storage.write_many({_layout.job_result(self.num): result})
            return True


def _stop_at_time_limit(hand_back: HandBack, timeout: float) -> None:
    """A watchdog: at the deadline the job is handed back FAILED as it stands, and the process
    ends, however the task is stuck (a thread cannot be stopped; a process can)."""
    task_thread = threading.current_thread()

    def stop_at_deadline() -> None:
        time.sleep(timeout)
        message = f"the job timed out after {timeout:g} s (hydra.launcher.timeout={timeout:g})"
        frame = sys._current_frames().get(task_thread.ident or 0)
        where = "".join(traceback.format_stack(frame)) if frame else "(unknown)\n"
        trace = f"{message}; it was stopped here:\n{where}"
        logging.getLogger(hand_back.job_name).error(trace)
        print(trace, file=sys.stderr)
        ran_in_output_dir = hand_back.output_dir is not None and _same_dir(
            os.getcwd(), hand_back.output_dir
        )
        outcome = StepOutcome(JobStatus.FAILED, JobTimedOut(message), trace, ran_in_output_dir)
        try:
            stopping = hand_back.finish(outcome)  # False: the job ended first, on its own
        except Exception:  # noqa: BLE001 - the result may be lost, but the job must stop
            print(traceback.format_exc(), file=sys.stderr)
            stopping = True
        if stopping:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(TIMED_OUT_EXIT)

    threading.Thread(target=stop_at_deadline, name="time-limit", daemon=True).start()


def _start_attempt(storage: Storage, num: int) -> int:
    """Counts this attempt and clears what an earlier one handed back: the last one speaks.

    Vertex does not tell a container which attempt it is; the count lives in the staging root.
    Only staging-root objects are cleared: on the local backend the output dir is the user's.
    """
    earlier = storage.read(_layout.job_attempts(num))
    attempt = int(earlier or b"0") + 1
    storage.write_many({_layout.job_attempts(num): str(attempt).encode()})
    if attempt > 1:
        storage.delete_below(_layout.job_result(num))
        storage.delete_below(_layout.job_output(num))
    return attempt


def _run_staged_job(storage: Storage, args: argparse.Namespace, hand_back: HandBack) -> StepOutcome:
    """Restores what the launcher staged and runs the job through Hydra's run_job."""
    _check_python(args.python)
    shared = _load_checked(storage, _layout.SHARED_PAYLOAD, args.shared_digest)
    job = _load_checked(storage, _layout.job_payload(args.job), args.job_digest)
    main_problem = _restore_main(shared["main"])
    parts, shared_problem = _unpack(shared, main_problem)
    job_parts, job_problem = _unpack(job, main_problem)
    sweep_config: DictConfig = job_parts["sweep_config"]
    dir_keys: DirKeys = job_parts["dir_keys"]
    setup_globals()
    Singleton.set_state(parts["singleton_state"])
    if shared["in_container"]:
        _map_paths_into_container(sweep_config, dir_keys[0])
    HydraConfig.instance().set_config(sweep_config)
    output_dir = job_output_dir(sweep_config, dir_keys)
    hand_back.output_dir = output_dir
    hand_back.job_name = str(sweep_config.hydra.job.name)
    task_function = _exit_as_failure(parts["task_function"])
    problem = shared_problem or job_problem
    if problem:
        task_function = _warning_first(task_function, problem)
    log_file = output_dir / f"{sweep_config.hydra.job.name}.log"
    with _streaming_log(
        storage, log_file, _layout.job_live_log(args.job), args.log_upload_interval
    ):
        job_return = _run(parts["hydra_context"], task_function, sweep_config, dir_keys)
        trace = _log_failure(job_return)
    if trace and problem:  # likely why it failed (`__main__.X` not found): say it in the terminal
        trace += f"\n{problem}"
    return StepOutcome(
        status=job_return.status,
        return_value=job_return._return_value,
        traceback=trace,
        ran_in_output_dir=_same_dir(job_return.working_dir, output_dir),
    )


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
    """sys.exit(n) in a task: Hydra's run_job lets SystemExit through, which would end the step
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

    return task_that_may_exit


def _warning_first(task_function: TaskFunction, warning: str) -> TaskFunction:
    """The job's log, which Hydra sets up inside run_job, starts with the warning."""

    def task_after_warning(cfg: DictConfig) -> Any:
        log.warning(warning)
        return task_function(cfg)

    return task_after_warning


def _upload_outputs(storage: Storage, output_dir: Path, num: int) -> Optional[str]:
    """Mirrors the output dir, also after the task raised; a failure here keeps the result."""
    if not output_dir.is_dir():
        return None
    try:
        # A single run's dir holds the run's own record (and, locally, its staging root).
        skip = {_layout.JOB_STATUS_FILE, _layout.JOB_RESULT_FILE, _layout.RUNS_DIR}
        storage.upload_dir(output_dir, _layout.job_output(num), skip)
    except Exception as e:  # noqa: BLE001 - e.g. a file the app deleted while it was listed
        print(traceback.format_exc(), file=sys.stderr)
        return f"its outputs could not all be uploaded: {e!r}"
    return None


def _parse(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run-root", required=True)
    parser.add_argument("--shared-digest", required=True)
    parser.add_argument("--job", type=int, required=True)
    parser.add_argument("--job-digest", required=True)
    parser.add_argument("--log-upload-interval", type=float, default=15.0)
    parser.add_argument("--request-timeout", type=float, default=120.0)
    parser.add_argument("--python", help="the launcher's Python, major.minor")
    parser.add_argument("--timeout", type=float, help="seconds the job may run; none: no limit")
    return parser.parse_args(argv)


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
    data = storage.read(name)
    if data is None:
        raise FileNotFoundError(f"{storage.uri(name)} is missing")
    actual = hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise PayloadDigestMismatch(
            f"{storage.uri(name)} has digest {actual}, the launcher staged {digest}: refusing it"
        )
    return _payload.loads(data)


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


def _log_failure(job_return: JobReturn) -> str:
    """Puts the traceback into the job's own log, and returns it for the launcher."""
    error = job_return._return_value
    if job_return.status is JobStatus.COMPLETED or not isinstance(error, BaseException):
        return ""
    trace = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    logging.getLogger(str(job_return.task_name or __name__)).error(f"Job failed:\n{trace}")
    return trace


def _same_dir(working_dir: Optional[str], output_dir: Path) -> bool:
    # run_job reports the output dir as it joined it, often relative to this process's cwd.
    return working_dir is not None and Path(os.path.abspath(working_dir)) == output_dir


def _result_bytes(outcome: StepOutcome, attempt: int, upload_error: Optional[str]) -> bytes:
    """Plain values but for "value", the pickled return value (or exception): the launcher
    can read how the job ended without the app's modules."""
    status, trace = outcome.status, outcome.traceback
    try:
        value = cloudpickle.dumps(outcome.return_value)
    except Exception as e:  # noqa: BLE001 - an unpicklable value must not lose the job
        what = "exception" if status is JobStatus.FAILED else "return value"
        kind = type(outcome.return_value)
        message = (
            f"the job's {what} (a {kind.__module__}.{kind.__qualname__}) could not be pickled "
            f"back to the launcher: {e!r}"
        )
        status, trace = JobStatus.FAILED, "\n".join(part for part in (trace, message) if part)
        value = cloudpickle.dumps(RuntimeError(message))
    if status is not JobStatus.COMPLETED and not trace:
        # e.g. a Hydra callback that set FAILED without an exception: still say something.
        trace = f"the job ended {status.name} with {outcome.return_value!r}"
    result = {
        "status": status,
        "value": value,
        "traceback": trace,
        "attempt": attempt,
        "ran_in_output_dir": outcome.ran_in_output_dir,
        "upload_error": upload_error,
    }
    return pickle.dumps(result)


@contextmanager
def _streaming_log(storage: Storage, log_file: Path, name: str, interval: float) -> Iterator[None]:
    """Uploads the job's log every `interval` seconds while it runs, so the launcher can show it."""
    stop = threading.Event()

    def upload_until_stopped() -> None:
        while not stop.wait(interval):
            if log_file.is_file():
                try:
                    storage.upload_file(log_file, name)
                except Exception as e:  # noqa: BLE001 - a missed upload must not fail the job
                    print(f"log upload failed: {e!r}", file=sys.stderr)

    thread = threading.Thread(target=upload_until_stopped, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


if __name__ == "__main__":
    sys.exit(main())
