"""What the terminal shows of a run's jobs: their console lines (hydra.launcher.console), a line
for each job that fails as it ends, and a closing summary of the failures with the next commands.

Each job's console is its step's stdout and stderr: on the local backend the file its step
writes; on Vertex the copy its step uploads to the staging root, fetched into the same place.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from hydra.core.utils import filter_overrides

from .._backends._base import State
from .._shared import _layout
from .._shared._faults import FAILURE_MARK
from .._shared._layout import JOB_STATUS_FILE
from .._shared._storage import Storage
from ._report import headline
from ._watch import Outcome, WatchedJob

log = logging.getLogger(__name__)

RESUME = "hydra.launcher.resume"
# How the launcher starts a failure it tells itself: the job is named in the line already.
JOB_PREFIX = re.compile(r"^job #\d+ \(.*?\): ")
# The clause that introduces what the following lines list (`; its console (...) ends with:`).
LISTING_FOLLOWS = re.compile(r"; [^;]*:$")


def console_mode(chosen: Optional[str], single: bool) -> str:
    """hydra.launcher.console as set; unset, a single run shows all, a sweep its failures."""
    return chosen or ("all" if single else "failures")


class JobConsoles:
    """Echoes the jobs' consoles into this terminal, as the watcher polls and as each job ends.

    fetch (Vertex): brings the consoles of the given jobs from the staging root into their
    files; at most every fetch_interval seconds while they run, and once as each ends.
    """

    def __init__(
        self,
        mode: str,
        consoles_dir: Path,
        prefixed: bool,
        storage: Optional[Storage] = None,
        fetch_interval: float = 0.0,
        then: Optional[Callable[[List[WatchedJob]], None]] = None,
    ) -> None:
        self.mode = mode
        self.consoles_dir = consoles_dir
        self.prefixed = prefixed
        self.storage = storage
        self.fetch_interval = fetch_interval
        self.then = then
        self._offsets: Dict[int, int] = {}
        self._finished: set[int] = set()
        self._versions: Dict[str, object] = {}
        self._last_fetch = 0.0
        # Jobs end in collecting threads; one job's lines are never cut by another's.
        self._lock = threading.Lock()

    def __call__(self, running: List[WatchedJob]) -> None:
        """The watcher's per-poll work: new lines of every running job (console=all)."""
        if self.then is not None:
            self.then(running)
        if self.mode != "all" or not running:
            return
        if time.monotonic() - self._last_fetch >= self.fetch_interval:
            self._last_fetch = time.monotonic()
            self._fetch(running)
        for job in running:
            self._echo(job, final=False)

    def ended(self, job: WatchedJob, outcome: Outcome) -> None:
        """The rest of a job's console (console=all; console=failures if it failed), then a line
        naming its failure."""
        failed = outcome.state is State.FAILED
        if self.mode == "all" or (self.mode == "failures" and failed):
            self._fetch([job])
            self._echo(job, final=True)
        if failed:
            log.error(f"#{job.num} {job_label(job)} failed: {failure_line(outcome.error)}")

    def console_file(self, job: WatchedJob) -> Path:
        return self.consoles_dir / f"{job.task_name}.log"

    def _fetch(self, jobs: List[WatchedJob]) -> None:
        if self.storage is None:
            return  # the steps write the files themselves
        targets = {_layout.job_console(job.num): self.console_file(job) for job in jobs}
        try:
            self.storage.download_changed(targets, self._versions)
        except Exception as e:  # noqa: BLE001 - a console missed is not worth failing a run
            log.warning(f"Could not fetch the jobs' consoles: {e!r}")

    def _echo(self, job: WatchedJob, final: bool) -> None:
        """The job's lines not shown yet, up to its step's own account of a failure (the
        launcher names the failure itself); final: also a last line without its newline."""
        with self._lock:
            if job.num in self._finished:
                return
            try:
                with self.console_file(job).open("rb") as console:
                    console.seek(self._offsets.get(job.num, 0))
                    text = console.read()
            except OSError:
                return
            if not final:
                text = text[: text.rfind(b"\n") + 1]
            self._offsets[job.num] = self._offsets.get(job.num, 0) + len(text)
            lines = text.decode("utf-8", errors="replace").splitlines()
            if FAILURE_MARK in lines:
                lines = lines[: lines.index(FAILURE_MARK)]
                self._finished.add(job.num)
            if final:
                self._finished.add(job.num)
            prefix = f"[#{job.num} {job_label(job)}] " if self.prefixed else ""
            if lines:
                sys.stdout.write("".join(f"{prefix}{line}\n" for line in lines))
                sys.stdout.flush()


def job_label(job: WatchedJob) -> str:
    """The job's overrides, as the launch lists them; else its name (a hand-built task's)."""
    return " ".join(filter_overrides(list(job.overrides))) or job.display_name


def failure_line(error: Optional[str]) -> str:
    """How a job failed, in one line: its exception, exit status, signal or time limit."""
    line = JOB_PREFIX.sub("", headline(error))
    return LISTING_FOLLOWS.sub("", line) or "no reason given"


def report_failures(jobs: List[WatchedJob], record_dir: Path) -> None:
    """The launch's last lines: every job that failed, and what to run next."""
    failed = {job.num: job for job in jobs if _status(job).get("state") == State.FAILED.value}
    if not failed:
        return
    lines = [f"{len(failed)} of {len(jobs)} jobs failed:"]
    for num, job in failed.items():
        lines.append(f"\t#{num} {job_label(job)}: {failure_line(_status(job).get('error'))}")
    where = shlex.quote(str(record_dir))
    lines.append(f"Every job's state and error: hydra-vertex-pipeline status {where}")
    single = len(jobs) == 1 and jobs[0].local_dir == record_dir
    again = resume_command(record_dir, single)
    lines.append(f"To run the jobs that did not succeed again: {again}")
    log.error("\n".join(lines))


def _status(job: WatchedJob) -> Dict[str, Any]:
    try:
        loaded: Dict[str, Any] = json.loads((job.local_dir / JOB_STATUS_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded


def resume_command(record_dir: Path, single: bool) -> str:
    """This launch's command line (as typed, interpreter included) into the same dir (a
    `${now:...}` default would make a new one, with nothing to resume) with resume=true."""
    # sys.orig_argv (Python 3.10+) holds the interpreter and its options too.
    launched = getattr(sys, "orig_argv", [sys.executable, *sys.argv])
    same_dir = f"hydra.{'run' if single else 'sweep'}.dir"
    words = [word for word in launched if not word.startswith((f"{RESUME}=", f"{same_dir}="))]
    return shlex.join([*words, f"{same_dir}={record_dir}", f"{RESUME}=true"])
