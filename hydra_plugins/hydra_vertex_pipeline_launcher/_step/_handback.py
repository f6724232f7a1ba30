"""What a step does the same way whatever runs its job (payload or command): count the attempt,
stream the job's log, keep its time limit, and hand back its output dir and result, once."""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Protocol, Tuple

from hydra.core.utils import JobStatus

from .._shared import _layout
from .._shared._faults import FAILURE_MARK, JobTimedOut, pickle_outcome
from .._shared._result import plain, plain_from_pickle, seal
from .._shared._storage import Storage
from ._console import Console

# The exit status of a step stopped at its time limit, as coreutils' `timeout` uses.
TIMED_OUT_EXIT = 124


@dataclass
class StepOutcome:
    """What a step hands back: the launcher rebuilds the JobReturn around it."""

    status: JobStatus
    return_value: Any
    traceback: str
    ran_in_output_dir: bool
    # The return value (or exception) as pickled where the job ran: a command's own process.
    pickled_value: Optional[bytes] = None
    # What the launcher should say of the job besides how it ended (files left in the container).
    warnings: Tuple[str, ...] = ()


class HandBack:
    """Mirrors the job's output dir and writes its result, exactly once: at the job's end or
    at its time limit, whichever comes first."""

    def __init__(
        self,
        storage: Storage,
        num: int,
        attempt: int,
        key: str,
        run_id: str,
        console: Optional[Console] = None,
    ) -> None:
        self.storage = storage
        self.num = num
        self.attempt = attempt
        # The run's result key (see _shared._result): the launcher trusts only what it seals.
        self.key = key
        self.run_id = run_id
        # The job's hydra.overrides.task, once known: resume reuses a result only for them.
        self.overrides: Optional[List[str]] = None
        # Known once the job's config is (payload) or its command's Hydra has (command).
        self.output_dir: Optional[Path] = None
        self.job_name = __name__
        # The step's stdout and stderr, uploaded with the job's log while it runs and at its end.
        self.console = console
        self._console_lock = threading.Lock()
        self._console_final = False
        # Held through the whole hand-back: the time limit ends the process while holding it,
        # so a job that ends meanwhile waits here instead of handing back a second outcome.
        self._lock = threading.Lock()
        self._handed_back = False

    @property
    def log_file(self) -> Optional[Path]:
        """The job's own log, as Hydra's job logging names it."""
        return self.output_dir / f"{self.job_name}.log" if self.output_dir else None

    def finish(self, outcome: StepOutcome) -> bool:
        """False when the other side handed back first."""
        with self._lock:
            if self._handed_back:
                return False
            self._handed_back = True
            if outcome.status is not JobStatus.COMPLETED and outcome.traceback:
                self._mark_failure(outcome.traceback)
            self.upload_console(final=True)
            output_dir = self.output_dir
            upload_error = (
                _upload_outputs(self.storage, output_dir, self.num) if output_dir else None
            )
            header = {
                "run_id": self.run_id,
                "job": self.num,
                "attempt": self.attempt,
                "ran_in_output_dir": outcome.ran_in_output_dir,
                "upload_error": upload_error,
                "overrides": self.overrides,
                "warnings": list(outcome.warnings),
            }
            result = _result_bytes(outcome, header, self.key)
            self.storage.write_many({_layout.job_result(self.num): result})
            return True

    def _mark_failure(self, trace: str) -> None:
        """The line the launcher cuts the console at, below all the job wrote (its last line
        too, if unended): stdout's and stderr's pumps race, and the launcher shows nothing
        below the mark."""
        own_line = ""
        if self.console is not None:
            self.console.drain()
            own_line = "" if self.console.ends_line else "\n"
        print(f"{own_line}{FAILURE_MARK}\n{trace}", file=sys.stderr, flush=True)

    def upload_console(self, final: bool = False) -> None:
        """final: once what the step wrote so far reached the console's file; no upload follows
        it (one under way would land after it, older)."""
        if self.console is None:
            return
        with self._console_lock:
            if self._console_final:
                return
            self._console_final = final
            if final:
                self.console.drain()
            try:
                self.storage.upload_file(self.console.path, _layout.job_console(self.num))
            except Exception as e:  # noqa: BLE001 - a missed upload must not fail the job
                print(f"console upload failed: {e!r}", file=sys.stderr)


class JobRunner(Protocol):
    """How a step runs its job, one per execution mode."""

    def run(self) -> StepOutcome: ...

    def halt(self) -> Tuple[str, bool]:
        """Stops the job where it can, at its time limit: (where it was, whether it ran in its
        output dir)."""

    def log_error(self, text: str) -> None:
        """Into the job's own log."""


def stop_at_time_limit(
    hand_back: HandBack,
    timeout: float,
    halt: Callable[[], Tuple[str, bool]],
    log_error: Callable[[str], None],
) -> None:
    """A watchdog: at the deadline the job is handed back FAILED as it stands, and the process
    ends, however the task is stuck (a thread cannot be stopped; a process can)."""

    def stop_at_deadline() -> None:
        time.sleep(timeout)
        message = f"the job timed out after {timeout:g} s (hydra.launcher.timeout={timeout:g})"
        where, ran_in_output_dir = halt()
        trace = f"{message}\nIt was stopped here:\n{where}"
        log_error(message)
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


def start_attempt(storage: Storage, num: int) -> int:
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


@contextmanager
def streaming_log(
    storage: Storage, hand_back: HandBack, name: str, interval: float
) -> Iterator[None]:
    """Uploads the job's log every `interval` seconds while it runs, so the launcher can show it."""
    stop = threading.Event()

    def upload_until_stopped() -> None:
        while not stop.wait(interval):
            hand_back.upload_console()
            log_file = hand_back.log_file
            if log_file is not None and log_file.is_file():
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


def same_dir(working_dir: Optional[str], output_dir: Path) -> bool:
    # run_job reports the output dir as it joined it, often relative to this process's cwd.
    return working_dir is not None and Path(os.path.abspath(working_dir)) == output_dir


def _upload_outputs(storage: Storage, output_dir: Path, num: int) -> Optional[str]:
    """Mirrors the output dir, also after the task raised; a failure here keeps the result."""
    if not output_dir.is_dir():
        return None
    try:
        # A single run's dir holds the run's own record (and, locally, its staging root).
        storage.upload_dir(output_dir, _layout.job_output(num), _layout.LAUNCHER_OWNED)
    except Exception as e:  # noqa: BLE001 - e.g. a file the app deleted while it was listed
        print(traceback.format_exc(), file=sys.stderr)
        return f"its outputs could not all be uploaded: {e!r}"
    return None


def _result_bytes(outcome: StepOutcome, header: Dict[str, Any], key: str) -> bytes:
    """The result sealed with the run's key; a plain return value as JSON, else pickled."""
    status, pickled, trace = outcome.status, outcome.pickled_value, outcome.traceback
    value: Dict[str, Any] = {"pickle": True}
    if pickled is not None:  # pickled where the job ran: a command's own process
        value = plain_from_pickle(pickled)
    elif status is JobStatus.COMPLETED and plain(outcome.return_value):
        value = {"json": outcome.return_value}
    else:
        status, pickled, trace = pickle_outcome(status, outcome.return_value, trace)
    sealed = {**header, "status": status.name, "traceback": trace, "value": value}
    return seal(sealed, b"" if "json" in value else pickled or b"", key)
