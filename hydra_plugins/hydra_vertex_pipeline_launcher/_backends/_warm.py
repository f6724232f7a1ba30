"""Warm starts for local steps: `python -m <module> args` forked from a preloaded interpreter.

A fresh step interpreter spends most of a trivial job importing Hydra, OmegaConf and cloudpickle.
Here one server per (working dir, start-up environment) is started cold, imports the step's
modules once, and forks one child per step. The child becomes what `python -m <module> args`
started by the local backend would be: its own session (so signals reach it and what it
starts), the step's working dir, exactly the step's environment, stdin from /dev/null, stdout
and stderr appended to the step's console log, `sys.argv` and `sys.path` as `-m` sets them; it
then runs the module as `__main__` and ends as that interpreter would (atexit, exit code,
uncaught exception, signal). The server reaps its children and reports each exit code, which
the launcher reads as Popen's (negative: the signal that killed it).

The server is single-threaded and started with its own session: Ctrl-C in the terminal reaches
neither it nor the steps; the launcher decides. The launcher never forks.

Run as `python -m hydra_plugins.hydra_vertex_pipeline_launcher._backends._warm`: the server,
speaking length-prefixed pickles on its stdin and stdout.
"""

from __future__ import annotations

import gc
import itertools
import logging
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Dict, Iterator, List, Optional, Tuple

from .._shared._process_tree import PARENT_PID_ENV

# Imported by the server before it forks: the step's modules and, through them, Hydra,
# OmegaConf and cloudpickle. Only our own step module: a user's module may do work at import.
PRELOAD = "hydra_plugins.hydra_vertex_pipeline_launcher._step._entry"
# Environment variables the interpreter or the dynamic loader reads once, at start-up: a warm
# child inherits the server's reading of them, so steps that differ in these get their own server.
STARTUP_ENV_PREFIXES = ("PYTHON", "LC_", "LD_", "DYLD_", "MALLOC_")
STARTUP_ENV_NAMES = frozenset({"LANG", "LANGUAGE", "HOME", "TMPDIR", "TEMP", "TMP"})
FRAME_HEADER = struct.Struct("!I")
# The exit code of a child that could not become its step (it reports why before exiting).
SETUP_FAILED = 127
# Servers a run keeps at once; steps whose start-up environment would need more start cold
# (e.g. a PYTHONHASHSEED per job: a server each would cost more than it saves).
MAX_SERVERS = 4
LOST_POLL_SECONDS = 0.1

log = logging.getLogger(__name__)

StartupKey = Tuple[str, Tuple[Tuple[str, str], ...]]


@dataclass(frozen=True)
class StepRequest:
    request_id: int
    argv: List[str]
    cwd: str
    env: Dict[str, str]
    console: str


class WarmStartError(RuntimeError):
    """The step's child could not become the step (e.g. its working dir is missing)."""


def can_start_warm(argv: List[str]) -> bool:
    """Only `<this python> -m <module> ...`, and only where there is fork."""
    return (
        hasattr(os, "fork")
        and len(argv) >= 3
        and argv[0] == sys.executable
        and argv[1] == "-m"
        and not argv[2].startswith("-")
    )


def startup_env(env: Dict[str, str]) -> Tuple[Tuple[str, str], ...]:
    return tuple(
        sorted(
            (name, value)
            for name, value in env.items()
            if name.startswith(STARTUP_ENV_PREFIXES) or name in STARTUP_ENV_NAMES
        )
    )


# ---------------------------------------------------------------- the launcher's side


class WarmProcess:
    """A warm step as the local backend waits for and signals it: a Popen look-alike."""

    def __init__(self) -> None:
        self.pid = 0
        self.returncode: Optional[int] = None
        self.start_error: Optional[str] = None
        self.started = threading.Event()
        self.ended = threading.Event()

    def wait(self, timeout: Optional[float] = None) -> int:
        if not self.ended.wait(timeout):
            raise subprocess.TimeoutExpired(f"warm step {self.pid}", timeout or 0.0)
        if self.returncode is None:
            raise RuntimeError(
                f"the warm-start server of the local backend ended while step process "
                f"{self.pid} ran: its exit code is lost"
            )
        return self.returncode

    def terminate(self) -> None:
        os.kill(self.pid, signal.SIGTERM)

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)


class WarmStarter:
    """The local backend's warm starts: servers started on first use, closed with the run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._servers: Dict[StartupKey, Optional[_Server]] = {}

    def start(
        self, argv: List[str], cwd: Path, env: Dict[str, str], console: Path
    ) -> Optional[WarmProcess]:
        """The started step; None when it must start cold (not `python -m`, no server)."""
        if not can_start_warm(argv):
            return None
        key = (str(cwd), startup_env(env))
        with self._lock:
            if key not in self._servers and len(self._servers) < MAX_SERVERS:
                self._servers[key] = _Server.launch(cwd, env)
            server = self._servers.get(key)
        return server.start(argv, cwd, env, console) if server else None

    def close(self) -> None:
        with self._lock:
            servers = [server for server in self._servers.values() if server]
            self._servers.clear()
        for server in servers:
            server.close()


class _Server:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc
        self._ids = itertools.count()
        self._lock = threading.Lock()
        # Requests are written outside _lock, which the reply reader takes: a full pipe each
        # way cannot deadlock.
        self._write_lock = threading.Lock()
        self._pending: Dict[int, WarmProcess] = {}
        self._lost = False
        self._closing = False
        self._reader = threading.Thread(
            target=self._read_replies, name="vertex-local-warm", daemon=True
        )
        self._reader.start()

    @classmethod
    def launch(cls, cwd: Path, env: Dict[str, str]) -> Optional[_Server]:
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", __name__],
                cwd=cwd,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as e:
            log.warning(f"Local steps start cold: the warm-start server did not start ({e!r})")
            return None
        return cls(proc)

    def start(
        self, argv: List[str], cwd: Path, env: Dict[str, str], console: Path
    ) -> Optional[WarmProcess]:
        with self._lock:
            if self._lost:
                return None
            request = StepRequest(next(self._ids), argv, str(cwd), env, str(console))
            process = WarmProcess()
            self._pending[request.request_id] = process
        try:
            with self._write_lock:
                assert self._proc.stdin is not None
                _write_frame(self._proc.stdin, request)
        except OSError:  # the server is gone: the reader marks it lost
            with self._lock:
                self._pending.pop(request.request_id, None)
            return None
        process.started.wait()
        if process.start_error:
            raise WarmStartError(f"the step could not start:\n{process.start_error}")
        return process if process.pid else None

    def close(self) -> None:
        """The server exits when its requests end; the steps it started are the backend's."""
        assert self._proc.stdin is not None
        self._closing = True
        self._proc.stdin.close()
        self._proc.wait()
        self._reader.join()

    def _read_replies(self) -> None:
        assert self._proc.stdout is not None
        for reply in _read_frames(self._proc.stdout):
            kind, request_id, value = reply
            with self._lock:
                process = self._pending[request_id]
                if kind == "ended" or (kind == "started" and value[1]):
                    del self._pending[request_id]
            if kind == "started":
                process.pid, process.start_error = value
                process.started.set()
            else:
                process.returncode = value
                process.ended.set()
        self._on_lost()

    def _on_lost(self) -> None:
        """Steps not started yet start cold; running ones end once their process is gone."""
        with self._lock:
            self._lost = True
            pending = list(self._pending.values())
            self._pending.clear()
        if not self._closing:
            log.warning("Local steps start cold: the warm-start server ended")
        for process in pending:
            process.started.set()
            while process.pid and _exists(process.pid):
                time.sleep(LOST_POLL_SECONDS)
            process.ended.set()


def _exists(pid: int) -> bool:
    """Whether the process runs: an orphan whose new parent does not reap it (PID 1 in some
    containers) stays a zombie, which counts as ended."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


def _write_frame(stream: IO[bytes], message: object) -> None:
    data = pickle.dumps(message)
    stream.write(FRAME_HEADER.pack(len(data)) + data)
    stream.flush()


def _read_frames(stream: IO[bytes]) -> Iterator[Tuple[str, int, object]]:
    while True:
        header = stream.read(FRAME_HEADER.size)
        if len(header) < FRAME_HEADER.size:
            return
        (size,) = FRAME_HEADER.unpack(header)
        yield pickle.loads(stream.read(size))


# ---------------------------------------------------------------- the server's side


class _FrameBuffer:
    """Frames from a file descriptor read only when select says it is readable."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._data = b""
        self.at_end = False

    def read_available(self) -> List[StepRequest]:
        chunk = os.read(self.fd, 1 << 16)
        self.at_end = not chunk
        self._data += chunk
        requests = []
        while len(self._data) >= FRAME_HEADER.size:
            (size,) = FRAME_HEADER.unpack_from(self._data)
            end = FRAME_HEADER.size + size
            if len(self._data) < end:
                break
            requests.append(pickle.loads(self._data[FRAME_HEADER.size : end]))
            self._data = self._data[end:]
        return requests


@dataclass(frozen=True)
class _Startup:
    """What this interpreter's start-up made of the start-up environment it shares with its
    steps: sys.path, and variables it added (PEP 538 sets LC_CTYPE under the C locale)."""

    path: List[str]
    environ: Dict[str, str]

    def added_to(self, env: Dict[str, str]) -> Dict[str, str]:
        return {name: value for name, value in self.environ.items() if name not in env}


def main() -> None:
    startup = _Startup(list(sys.path), dict(startup_env(dict(os.environ))))
    requests_fd, replies_fd = _protocol_fds()
    _preload()
    # What is loaded now stays shared with the children, not copied as the collector walks it.
    gc.freeze()
    if threading.active_count() != 1:
        sys.exit("the warm-start server cannot fork: importing the step's modules started threads")
    request = _serve(requests_fd, replies_fd, startup)
    if request is not None:  # in a child, which has become the step
        _run_as_main(request, startup)


def _protocol_fds() -> Tuple[int, int]:
    """Moves the protocol off stdin and stdout: nothing printed here can corrupt it, and what
    a child inherits as stdin and stdout is /dev/null and the server's stderr until it
    becomes its step."""
    requests_fd, replies_fd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    return requests_fd, replies_fd


def _preload() -> None:
    """Imports the step module's imports, then forgets the module itself: each step runs it
    afresh as __main__, as `-m` does (and runpy would warn about it being imported already).
    Hydra's plugin scan is done here too, from the paths every step of this server starts with:
    a step restoring Hydra's state keeps it instead of scanning (and re-running every plugin
    module) again."""
    __import__(PRELOAD)
    from hydra.core.plugins import Plugins

    Plugins.instance()
    del sys.modules[PRELOAD]
    package, _, name = PRELOAD.rpartition(".")
    delattr(sys.modules[package], name)


def _serve(requests_fd: int, replies_fd: int, startup: _Startup) -> Optional[StepRequest]:
    """Forks a child per request and reports how each ended; returns None at the end of the
    requests, and a request only in the child that is to run it."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    # SIGCHLD only wakes the select below: children are reaped there, one place, no races.
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    signal.set_wakeup_fd(wake_w)
    requests = _FrameBuffer(requests_fd)
    running: Dict[int, int] = {}  # pid -> request id
    server_fds = [requests_fd, replies_fd, wake_r, wake_w]
    while not requests.at_end:
        readable, _, _ = select.select([requests_fd, wake_r], [], [])
        if wake_r in readable:
            _drain(wake_r)
            _reap(running, replies_fd)
        if requests_fd in readable:
            for request in requests.read_available():
                pid, error = _fork_step(request, server_fds, startup)
                if pid == 0:
                    return request
                if not error:
                    running[pid] = request.request_id
                _reply(replies_fd, ("started", request.request_id, (pid, error)))
    return None


def _fork_step(
    request: StepRequest, server_fds: List[int], startup: _Startup
) -> Tuple[int, Optional[str]]:
    """(pid, None) in the server once the child is its step, or (pid, why it could not be);
    (0, None) in the child."""
    ready_r, ready_w = os.pipe()
    server_pid = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for fd in server_fds:
                os.close(fd)
            _become_step(request, startup, server_pid)
        except BaseException:  # noqa: B036 - whatever it is, the server must hear it
            os.write(ready_w, traceback.format_exc().encode())
            os._exit(SETUP_FAILED)
        os.close(ready_w)
        return 0, None
    os.close(ready_w)
    with os.fdopen(ready_r, "rb") as ready:
        error = ready.read().decode(errors="replace")
    return pid, error or None


def _become_step(request: StepRequest, startup: _Startup, server_pid: int) -> None:
    """What Popen(argv, cwd, env, stdin=DEVNULL, stdout=log, stderr=STDOUT,
    start_new_session=True) gives a fresh interpreter, up to running its module. A step told
    to end with its launcher ends with this server, which ends with the launcher."""
    os.setsid()
    os.chdir(request.cwd)
    console = os.open(request.console, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    os.dup2(console, 1)
    os.dup2(console, 2)
    os.close(console)
    os.environ.clear()
    os.environ.update(request.env)
    os.environ.update(startup.added_to(request.env))
    if PARENT_PID_ENV in request.env:
        os.environ[PARENT_PID_ENV] = str(server_pid)


def _run_as_main(request: StepRequest, startup: _Startup) -> None:
    """As `python -m module args`: sys.argv[0] becomes the module's file; an exception or
    SystemExit ends this interpreter as it would end that one."""
    import runpy

    sys.path[:] = startup.path
    sys.argv[:] = ["-m", *request.argv[3:]]
    if hasattr(sys, "orig_argv"):  # Python 3.10+
        sys.orig_argv = list(request.argv)
    runpy.run_module(request.argv[2], run_name="__main__", alter_sys=True)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _reap(running: Dict[int, int], replies_fd: int) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        request_id = running.pop(pid, None)
        if request_id is not None:  # else a child that reported it could not start
            _reply(replies_fd, ("ended", request_id, os.waitstatus_to_exitcode(status)))


def _reply(fd: int, message: Tuple[str, int, object]) -> None:
    data = pickle.dumps(message)
    frame = memoryview(FRAME_HEADER.pack(len(data)) + data)
    while frame:  # a signal may cut a write short
        frame = frame[os.write(fd, frame) :]


if __name__ == "__main__":
    main()
