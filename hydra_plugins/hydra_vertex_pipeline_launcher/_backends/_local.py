"""The local backend: runs the compiled pipeline's container commands as subprocesses, no Docker.

Each task's command, args and env are read from the compiled spec (_spec.py), exactly as Vertex
would run them; only the image is ignored and `python` is this interpreter. Artifacts go in the
run's own pipeline root, `<run dir>/pipeline_root/<task>/<artifact>`.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO, Dict, List, Optional, Union

from .._shared._process_tree import PARENT_PID_ENV, stop_tree
from ._base import (
    CancelOutcome,
    RunContext,
    RunLocation,
    RunStatus,
    State,
    TaskStatus,
    utc_now,
)
from ._spec import LocalStep, Trigger, read_spec, read_steps, read_triggers
from ._warm import WarmProcess, WarmStarter

TERMINATE_GRACE_SECONDS = 5.0
KEEPER = "hydra_plugins.hydra_vertex_pipeline_launcher._backends._keeper"
CONSOLE_TAIL_CHARS = 2000
# Where the steps' artifacts go, in the run's local folder (Vertex's pipeline root, locally).
PIPELINE_ROOT = "pipeline_root"
# Where each step's console goes, in the run's local folder: `<task name>.log`.
CONSOLES_DIR = "steps"

StepProcess = Union["subprocess.Popen[bytes]", WarmProcess]


class LocalBackend:
    steps_share_filesystem = True
    outlives_launcher = False

    def __init__(self, max_parallel: int, cwd: Path, run: RunContext) -> None:
        self.max_parallel = max_parallel
        self.cwd = cwd
        self.location = RunLocation(resource_name=f"local:{run.run_id}")
        self.console_dir = run.local_dir / CONSOLES_DIR
        self.pipeline_root = run.local_dir / PIPELINE_ROOT
        self._lock = threading.Lock()
        self._tasks: Dict[str, TaskStatus] = {}
        self._procs: Dict[str, StepProcess] = {}
        self._warm = WarmStarter()
        self._cancelled = False
        self._pool: Optional[ThreadPoolExecutor] = None
        # Steps not started yet, and what each waits for.
        self._waiting: Dict[str, LocalStep] = {}
        self._triggers: Dict[str, Trigger] = {}
        self._closing = False

    def submit(self, spec_path: Path) -> None:
        spec = read_spec(spec_path)
        steps = read_steps(spec, self.pipeline_root)
        self.console_dir.mkdir(parents=True, exist_ok=True)
        for step in steps:
            for folder in step.artifact_dirs:
                folder.mkdir(parents=True, exist_ok=True)
        self._tasks = {step.task_name: TaskStatus(State.PENDING) for step in steps}
        self._pool = ThreadPoolExecutor(self.max_parallel, thread_name_prefix="vertex-local")
        self._triggers = read_triggers(spec)
        with self._lock:
            # In number order (hydra-job-2 before hydra-job-10), not the spec's sorted text order.
            in_order = sorted(steps, key=lambda step: _number_order(step.task_name))
            self._waiting = {step.task_name: step for step in in_order}
            self._start_ready()

    def read_status(self) -> RunStatus:
        with self._lock:
            tasks = dict(self._tasks)
        return RunStatus(state=_run_state(tasks.values(), self._cancelled), tasks=tasks)

    def cancel(self) -> CancelOutcome:
        with self._lock:
            self._cancelled = True
            procs = list(self._procs.values())
            for name, status in self._tasks.items():
                if status.state is State.PENDING:
                    self._tasks[name] = TaskStatus(State.CANCELLED, ended=utc_now())
        _terminate(procs)
        self.close(cancel_queued=True)
        return CancelOutcome.CONFIRMED

    def close(self, cancel_queued: bool = False) -> None:
        """cancel_queued: steps handed to the pool and not started yet never start (a cancel
        marked them already)."""
        with self._lock:
            self._closing = True
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=cancel_queued)
        self._warm.close()

    def _run(self, step: LocalStep) -> None:
        """Never leaves a task unended: the watcher would wait for it forever."""
        started = utc_now()
        try:
            self._run_attempts(step, started)
        except Exception:  # noqa: BLE001 - e.g. Popen out of memory or file handles
            error = f"the local backend could not run the step:\n{traceback.format_exc()}"
            self._set(step.task_name, TaskStatus(State.FAILED, started, utc_now(), error))

    def _run_attempts(self, step: LocalStep, started: str) -> None:
        console = self.console_dir / f"{step.task_name}.log"
        failure: Optional[str] = None
        for attempt in range(step.max_retries + 1):
            returncode = self._run_once(step, console, started)
            if returncode is None and attempt == 0:  # cancelled before it ever started
                self._set(step.task_name, TaskStatus(State.CANCELLED, ended=utc_now()))
                return
            failure = _failure(step, returncode)
            if failure is None:
                self._set(step.task_name, TaskStatus(State.SUCCEEDED, started, utc_now()))
                return
            if self._cancelled:
                break
        if self._cancelled:
            self._set(step.task_name, TaskStatus(State.CANCELLED, started, utc_now()))
            return
        error = f"{failure}; its console ({console}) ends with:\n"
        self._set(
            step.task_name, TaskStatus(State.FAILED, started, utc_now(), error + _tail(console))
        )

    def _run_once(self, step: LocalStep, console: Path, started: str) -> Optional[int]:
        """The step's exit code, or None when the run was cancelled before it started."""
        env = {
            **os.environ,
            **step.env,
            "PYTHONPATH": _python_path(step.env.get("PYTHONPATH")),
            # The step ends when this process does, SIGKILL included (_process_tree).
            PARENT_PID_ENV: str(os.getpid()),
        }
        with console.open("ab") as out:
            with self._lock:
                if self._cancelled:
                    return None
                proc = self._start(step, env, out, console)
                self._procs[step.task_name] = proc
                self._tasks[step.task_name] = TaskStatus(State.RUNNING, started)
            returncode = proc.wait()
            with self._lock:
                self._procs.pop(step.task_name, None)
        return returncode

    def _start(
        self, step: LocalStep, env: Dict[str, str], out: BinaryIO, console: Path
    ) -> StepProcess:
        """Forked from a preloaded interpreter where the step is `python -m ...` (it then skips
        importing Hydra & co.), else a fresh process, in a keeper that ends it and what it
        started with this process (_keeper): the same process, dir, env and log."""
        warm = self._warm.start(step.argv, self.cwd, env, console)
        if warm is not None:
            return warm
        return subprocess.Popen(
            [sys.executable, "-m", KEEPER, *step.argv],
            cwd=self.cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            **_own_process_group(),
        )

    def _set(self, task_name: str, status: TaskStatus) -> None:
        """status is where the task ended: the steps waiting for it may start."""
        with self._lock:
            self._tasks[task_name] = status
            self._start_ready()

    def _start_ready(self) -> None:
        """Hands every step whose upstream tasks have ended to the pool (in the spec's order);
        one whose trigger policy is not met ends FAILED, never started. Holds the lock."""
        assert self._pool is not None
        while not (self._cancelled or self._closing):
            ready = [name for name in self._waiting if self._upstream_ended(name)]
            if not ready:
                return
            for name in ready:
                step = self._waiting.pop(name)
                unmet = self._unmet_trigger(name)
                if unmet:
                    self._tasks[name] = TaskStatus(State.FAILED, ended=utc_now(), error=unmet)
                else:
                    self._pool.submit(self._run, step)

    def _upstream_ended(self, task_name: str) -> bool:
        upstream = self._triggers[task_name].upstream
        return all(self._tasks[name].state.terminal for name in upstream)

    def _unmet_trigger(self, task_name: str) -> Optional[str]:
        trigger = self._triggers[task_name]
        failed = [u for u in trigger.upstream if self._tasks[u].state is not State.SUCCEEDED]
        if trigger.all_upstream_completed or not failed:
            return None
        return f"not started: the steps it waits for did not all succeed ({', '.join(failed)})"


def _number_order(name: str) -> List[Union[int, str]]:
    """A sort key that reads each run of digits in name as a number."""
    # re.split with a group: the runs of digits are at the odd places.
    parts = re.split(r"([0-9]+)", name)
    return [int(part) if place % 2 else part for place, part in enumerate(parts)]


def _failure(step: LocalStep, returncode: Optional[int]) -> Optional[str]:
    """Why the step's attempt failed; None when it succeeded: exit code 0 and every output
    artifact written (Vertex's launcher fails the task that leaves one out, as here)."""
    if returncode != 0:
        return _how_it_ended(returncode)
    missing = [(name, path) for name, path in step.outputs if not path.exists()]
    if missing:
        name, path = missing[0]
        return f"the step exited with code 0 without writing its output artifact {name!r} ({path})"
    return None


def _how_it_ended(returncode: Optional[int]) -> str:
    """Popen's negative code is the signal that killed the step (POSIX): named, not numbered."""
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        hint = " (out of memory, or killed by hand)" if name == "SIGKILL" else ""
        return f"the step was killed by signal {name}{hint}"
    return f"the step exited with code {returncode}"


def _run_state(tasks: Any, cancelled: bool) -> State:
    states = [t.state for t in tasks]
    if not all(s.terminal for s in states):
        return State.RUNNING
    if cancelled or State.CANCELLED in states:
        return State.CANCELLED
    return State.FAILED if State.FAILED in states else State.SUCCEEDED


def _python_path(step_python_path: Optional[str]) -> str:
    """The app's folder first, as a container with the app installed would import it; then the
    step's own PYTHONPATH (hydra.launcher.env), then the launcher's."""
    entries = [sys.path[0]] if sys.path and sys.path[0] else []
    for python_path in (step_python_path, os.environ.get("PYTHONPATH")):
        if python_path:
            entries.append(python_path)
    return os.pathsep.join(entries)


def _own_process_group() -> Dict[str, Any]:
    """Popen arguments that keep the terminal's Ctrl-C away from a step (the launcher decides
    whether it is cancelled) and let it be signalled with everything it started."""
    if hasattr(os, "killpg"):
        return {"start_new_session": True}
    # Windows ignores start_new_session.
    return {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)}


def _terminate(procs: List[StepProcess]) -> None:
    """Asks every step to stop at once, one shared grace period, then kills what is left."""
    for proc in procs:
        _signal_group(proc, kill=False)
    deadline = time.monotonic() + TERMINATE_GRACE_SECONDS
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            # Also what it started in sessions of its own (a command-mode job's process).
            stop_tree(proc.pid)
            _signal_group(proc, kill=True)


def _signal_group(proc: StepProcess, kill: bool) -> None:
    """SIGTERM or SIGKILL to the step's process group where there are process groups (POSIX);
    elsewhere (Windows) to the step's process itself."""
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
        elif kill:
            proc.kill()
        else:
            proc.terminate()
    except ProcessLookupError:
        pass


def _tail(console: Path) -> str:
    try:
        text = console.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no console output)"
    return text[-CONSOLE_TAIL_CHARS:]
