"""A job's processes as one tree: found, stopped as a whole, and ended with their parent.

A container ends every process in it when its main process ends; a local step has no container.
Here a step becomes a child subreaper (Linux): what its job starts and leaves behind (a daemon,
a child of an exited command) is re-parented to the step instead of to init, so it stays among
the step's descendants, where it can be found and stopped. Elsewhere only the process groups
the step knows of can be stopped.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

PR_SET_CHILD_SUBREAPER = 36
# Set by whoever starts a local step (and by a command-mode step for its job's process): the
# pid of the process it must not outlive.
PARENT_PID_ENV = "HYDRA_VERTEX_PIPELINE_PARENT_PID"
# How a process ends when the one it must not outlive is gone: as SIGKILL would end it.
ORPHANED_EXIT = 137
# How often a process looks whether its parent is still the one it started under.
PARENT_POLL_SECONDS = 0.2
# Passes over the tree when stopping it: a process forking meanwhile adds to it.
STOP_PASSES = 5


def become_subreaper() -> bool:
    """Orphans among this process's descendants are re-parented to it (Linux only)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def descendants(root: int) -> List[int]:
    """The live processes below root (read from /proc; none where there is no /proc)."""
    children: Dict[int, List[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # it ended while listed
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, queue = [], list(children.get(root, []))
    while queue:
        pid = queue.pop()
        found.append(pid)
        queue.extend(children.get(pid, []))
    return found


def process_identity(pid: int) -> Optional[str]:
    """`<pid>@<start time>` of a running process, which no later process with its pid shares;
    None where /proc does not say."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return f"{pid}@{fields[19]}" if fields[0] != "Z" else None


def stop_tree(root: int, group: Optional[int] = None) -> None:
    """SIGKILL to every process below root and to the process group `group`, until none is
    left (root itself is spared)."""
    kill = getattr(signal, "SIGKILL", signal.SIGTERM)
    for _ in range(STOP_PASSES):
        if group is not None and hasattr(os, "killpg"):
            try:
                os.killpg(group, kill)
            except (ProcessLookupError, PermissionError):
                group = None  # gone: its id may be reused
        below = descendants(root)
        if not below and group is None:
            break
        for pid in below:
            try:
                os.kill(pid, kill)
            except ProcessLookupError:
                pass
        time.sleep(0.02)


def end_with_parent(parent: int, stop: Callable[[], None]) -> None:
    """Calls stop() (which ends this process) as soon as this process's parent is no longer
    `parent`: it died, SIGKILL included, and this process was re-parented."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        stop()

    if hasattr(os, "getppid") and os.name == "posix":
        threading.Thread(target=watch, name="end-with-parent", daemon=True).start()


def end_with_starter(subreaper: bool) -> None:
    """A process started with PARENT_PID_ENV (a local step; a command-mode job's process) ends,
    with everything it started, when that process ends, SIGKILL included. Polling, not a
    parent-death signal: Linux sends that when the starting *thread* ends, and the local
    backend starts steps from a pool's threads. subreaper: orphans below it are found too."""
    parent = os.environ.get(PARENT_PID_ENV)
    if parent:
        if subreaper:
            become_subreaper()
        end_with_parent(int(parent), lambda: stop_own_tree_and_exit(ORPHANED_EXIT))


def stop_own_tree_and_exit(exit_code: int) -> None:
    """Stops everything this process started (its own process group too, when it leads one:
    where there is no /proc, that is what can be found), then ends it at once."""
    sys.stdout.flush()
    sys.stderr.flush()
    stop_tree(os.getpid())
    if os.getpgrp() == os.getpid() and hasattr(signal, "SIGKILL"):
        os.killpg(os.getpid(), signal.SIGKILL)  # this process too
    os._exit(exit_code)


def reap_children() -> None:
    """Collects this process's ended children (orphans re-parented to it, once stopped); call
    it only where no child of its own is still waited for (subprocess would lose its code)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
