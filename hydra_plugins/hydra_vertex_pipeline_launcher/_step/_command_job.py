"""Command mode (hydra.launcher.execution=command), the step's side: the app's own command runs
as a child process with the job's overrides; the step hands back what the callback
(_command_callback) left, or, when the child ended without a result, how it ended and the end
of its stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from hydra.core.utils import JobStatus

from .._shared import _layout
from .._shared._faults import JobExited
from .._shared._overrides import read_staged_overrides
from .._shared._payload import read_checked
from .._shared._process_tree import PARENT_PID_ENV, become_subreaper, reap_children, stop_tree
from .._shared._storage import Storage
from ._command_callback import HANDBACK_DIR_ENV, RESULT_FILE, STACK_DUMP_SIGNAL, STARTED_FILE
from ._handback import HandBack, StepOutcome, streaming_log
from ._stray_files import Snapshot, snapshot, stray_warning

STDERR_TAIL_BYTES = 8000
SHOWN_TAIL_CHARS = 2000
# How long the job's process gets to print its stacks at the time limit before it is killed.
STACK_DUMP_SECONDS = 1.0
# After the job's command ended: how long what it started may keep writing to the job's stderr
# before it is stopped (in a container it would end with the container).
STREAMS_GRACE_SECONDS = 1.0
# After the step was asked to stop (a cancel): how long the job gets to end on its own before
# its processes are killed. Shorter than the local backend's own grace for the step.
STOP_GRACE_SECONDS = 2.0
# How long a job stopped at its time limit waits for the watchdog to end the step.
HALTED_WAIT_SECONDS = 60.0
FORWARDED_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP") if hasattr(signal, name)
)


def runnable(command: List[str]) -> List[str]:
    """`python` is the step's own interpreter, as the local backend runs the step itself; a
    bare name not on PATH, a console script installed beside it (a virtualenv's bin/)."""
    if command and command[0] in ("python", "python3"):
        return [sys.executable, *command[1:]]
    if command and os.sep not in command[0] and shutil.which(command[0]) is None:
        beside = Path(sys.executable).parent / command[0]
        if beside.is_file():
            return [str(beside), *command[1:]]
    return list(command)


class CommandJob:
    """The job runs as the app's command in a child process, in its own process group."""

    def __init__(
        self, storage: Storage, args: argparse.Namespace, command: List[str], hand_back: HandBack
    ) -> None:
        self.storage = storage
        self.args = args
        self.command = runnable(command)
        self.argv = list(self.command)
        self.hand_back = hand_back
        self.handback_dir = Path(tempfile.mkdtemp(prefix="hydra-vertex-step-"))
        self.stderr = StderrTail()
        self.ran_in_output_dir = False
        self._lock = threading.Lock()
        self._proc: Optional[subprocess.Popen[bytes]] = None
        self._halted = False

    def run(self) -> StepOutcome:
        self.argv = [*self.command, *self._staged_overrides()]
        live_log = _layout.job_live_log(self.args.job)
        # What the job leaves running stays below this process, where it can be stopped.
        become_subreaper()
        working_dir = Path(os.getcwd())
        # Before the job: its output dir does not exist yet, so nothing of it is listed.
        watched = snapshot(working_dir, working_dir) if self.args.watch_working_dir else None
        try:
            with streaming_log(
                self.storage, self.hand_back, live_log, self.args.log_upload_interval
            ):
                returncode = self._run_child()
                stray = self._stray_files(watched, working_dir)
            return dataclasses.replace(self._outcome(returncode), warnings=stray)
        finally:
            shutil.rmtree(self.handback_dir, ignore_errors=True)

    def _staged_overrides(self) -> List[str]:
        """The job's overrides, only as the launcher staged them (their digest is the task's)."""
        name = _layout.job_command_overrides(self.args.job)
        return read_staged_overrides(read_checked(self.storage, name, self.args.job_digest))

    def _stray_files(self, watched: Optional[Snapshot], working_dir: Path) -> Tuple[str, ...]:
        """The files the job wrote in the container's working dir, outside its output dir,
        named in its log (as payload mode's step does)."""
        self._learn_where()  # a quick job may end before its step read where it writes
        output_dir = self.hand_back.output_dir
        if watched is None or output_dir is None:
            return ()
        stray = stray_warning(watched, working_dir, output_dir)
        if not stray:
            return ()
        self._log("WARNING", stray)
        return (stray,)

    def halt(self) -> Tuple[str, bool]:
        """Asks the job's process for its stacks, then kills every process of the job (also
        when its command has ended and what it started goes on)."""
        with self._lock:
            self._halted = True
            proc = self._proc
        if proc is None:
            return "(the job's command was not running)\n", self.ran_in_output_dir
        mark = self.stderr.total
        running = proc.poll() is None
        if running and STACK_DUMP_SIGNAL is not None and self._learn_where():
            os.kill(proc.pid, STACK_DUMP_SIGNAL)  # faulthandler, registered by the callback
            deadline = time.monotonic() + STACK_DUMP_SECONDS
            while self.stderr.total == mark and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.1)  # the rest of the dump
        self._stop_job(proc)
        proc.wait()
        self.stderr.join(timeout=2)
        if not running:
            where = "(the job's command had ended; processes it started were still running)\n"
            return where, self.ran_in_output_dir
        where = self.stderr.since(mark) or "(its process printed no stacks)\n"
        return where, self.ran_in_output_dir

    def log_error(self, text: str) -> None:
        self._log("ERROR", text)

    def _log(self, level: str, text: str) -> None:
        """Appended to the job's log, as its logging would: the app's process may be gone."""
        log_file = self.hand_back.log_file
        if log_file is None or not log_file.parent.is_dir():
            return
        stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S,%f")[:-3]
        with log_file.open("a", encoding="utf-8") as log:
            log.write(f"[{stamp}][{__name__}][{level}] - {text}\n")

    def _run_child(self) -> Optional[int]:
        # The job's process ends with this one, however this one ends (the callback watches).
        env = {
            # Its lines reach the step's console as they come, not when a buffer fills.
            "PYTHONUNBUFFERED": "1",
            **os.environ,
            HANDBACK_DIR_ENV: str(self.handback_dir),
            PARENT_PID_ENV: str(os.getpid()),
        }
        with self._lock:
            if self._halted:
                return None
            self._proc = subprocess.Popen(
                self.argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        self.stderr.start(self._proc)
        with _forwarded_signals(self._proc) as stopped_by:
            returncode = self._wait(self._proc, stopped_by)
        # As in a container, what the job started ends with it: a child that holds its stderr
        # gets a moment to finish writing, not the step.
        self.stderr.join(STREAMS_GRACE_SECONDS)
        self._stop_job(self._proc)
        self.stderr.join(STREAMS_GRACE_SECONDS)
        if stopped_by:
            _end_by_signal(stopped_by[0])
        if self._halted:
            # Stopped at its time limit: that watchdog hands back and ends the step.
            time.sleep(HALTED_WAIT_SECONDS)
        return returncode

    def _wait(self, proc: subprocess.Popen[bytes], stopped_by: List[int]) -> int:
        """The command's exit code; once the step was asked to stop, the job gets
        STOP_GRACE_SECONDS to end before it is killed (it may ignore the signal)."""
        kill_at: Optional[float] = None
        while True:
            try:
                return proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                self._learn_where()
            if stopped_by and kill_at is None:
                kill_at = time.monotonic() + STOP_GRACE_SECONDS
            if kill_at is not None and time.monotonic() > kill_at:
                self._stop_job(proc)

    @staticmethod
    def _stop_job(proc: subprocess.Popen[bytes]) -> None:
        """Every process of the job: its command's process group, and whatever it started
        elsewhere (re-parented here, see become_subreaper)."""
        stop_tree(os.getpid(), group=proc.pid)
        if proc.poll() is not None:
            reap_children()  # the stopped orphans; the command itself was waited for

    def _learn_where(self) -> bool:
        """The job's output dir and name, from the callback, once the job has started."""
        if self.hand_back.output_dir is not None:
            return True
        started_file = self.handback_dir / STARTED_FILE
        if not started_file.is_file():
            return False
        started = json.loads(started_file.read_text(encoding="utf-8"))
        self.hand_back.job_name = started["job_name"]
        self.ran_in_output_dir = bool(started["ran_in_output_dir"])
        self.hand_back.overrides = started["overrides"]
        self.hand_back.output_dir = Path(started["output_dir"])
        return True

    def _outcome(self, returncode: Optional[int]) -> StepOutcome:
        started = self._learn_where()
        result_file = self.handback_dir / RESULT_FILE
        if result_file.is_file():
            result: Dict[str, Any] = pickle.loads(result_file.read_bytes())
            return StepOutcome(
                status=result["status"],
                return_value=None,
                traceback=result["traceback"],
                ran_in_output_dir=self.ran_in_output_dir,
                pickled_value=result["value"],
            )
        if returncode == 0 and started:
            # The task called sys.exit(0): a normal end with no return value, as in payload mode.
            return StepOutcome(JobStatus.COMPLETED, None, "", self.ran_in_output_dir)
        message = self._how_it_ended(returncode, started)
        said = self.stderr.text()[-SHOWN_TAIL_CHARS:]
        trace = f"{message}; its stderr ends with:\n{said}" if said.strip() else message
        self.log_error(trace)
        return StepOutcome(JobStatus.FAILED, JobExited(message), trace, self.ran_in_output_dir)

    def _how_it_ended(self, returncode: Optional[int], started: bool) -> str:
        if returncode is None:
            return "the job was stopped before its command started"
        if returncode < 0:
            return f"the job's process was killed by signal {signal.Signals(-returncode).name}"
        if returncode == 0:
            return (
                f"the job's command {self.command!r} ended without running a Hydra job: set "
                "hydra.launcher.command to the app's entrypoint in the image"
            )
        if not started:
            return f"the job's command exited with status {returncode} before the job started"
        return f"the job exited with status {returncode}"


class StderrTail:
    """Passes the child's stderr through to the step's, keeping its last bytes for messages."""

    def __init__(self) -> None:
        self.total = 0
        self._kept = bytearray()
        self._thread: Optional[threading.Thread] = None

    def start(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        stream = proc.stderr
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def join(self, timeout: Optional[float] = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def text(self) -> str:
        return bytes(self._kept).decode("utf-8", errors="replace")

    def since(self, mark: int) -> str:
        """What came after `mark` bytes in all, as far as it is still kept."""
        new = self.total - mark
        return bytes(self._kept[-new:]).decode("utf-8", errors="replace") if new > 0 else ""

    def _pump(self, stream: Any) -> None:
        out = sys.stderr.buffer if hasattr(sys.stderr, "buffer") else None
        while True:
            chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
            if not chunk:
                return
            if out is not None:
                out.write(chunk)
                out.flush()
            self._kept += chunk
            del self._kept[:-STDERR_TAIL_BYTES]
            self.total += len(chunk)


def _signal_group(proc: subprocess.Popen[bytes], signum: Optional[int]) -> None:
    """To the child's process group where there are process groups (POSIX); else to it."""
    try:
        if hasattr(os, "killpg") and signum is not None:
            os.killpg(proc.pid, signum)
        else:
            proc.kill()
    except ProcessLookupError:
        pass


@contextmanager
def _forwarded_signals(proc: subprocess.Popen[bytes]) -> Iterator[List[int]]:
    """A step asked to stop (a cancelled run) stops its job's process group too: it is not in
    the step's own. Yields the signals received."""
    received: List[int] = []

    def forward(signum: int, frame: Any) -> None:
        received.append(signum)
        _signal_group(proc, signum)

    try:
        previous = {signum: signal.signal(signum, forward) for signum in FORWARDED_SIGNALS}
    except ValueError:  # not the main thread
        yield received
        return
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _end_by_signal(signum: int) -> None:
    """Ends the step as the signal would have, handing back nothing, as a payload step's end:
    the run was cancelled, the job did not fail."""
    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    raise SystemExit(128 + signum)  # where the signal does not end a process
