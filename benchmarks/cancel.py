"""Cancel: SIGTERM to a launcher watching an N-job run, until it has ended.

Local backend: the real app (benchmarks/apps/sleeper.py, each job sleeping for minutes), its
sweep launched as a user launches it; SIGTERM once its run is going (steps running, the others
pending). Vertex: the fake Vertex of the tests (tests/fake_vertex.py) in this process, its steps
held, and a launcher watching the run through its own flow (_vertex_watch.py); SIGTERM once it
has read the run going. Timed: from the signal until the launcher's process has exited. Checked:
the run ended CANCELLED and every job's status file in its dir says it ended.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict

HERE = Path(__file__).resolve().parent
SLEEPER = HERE / "apps" / "sleeper.py"
ENDED = ("SUCCEEDED", "FAILED", "CANCELLED")
# Seconds the launcher has to get its run going before the benchmark gives up.
START_LIMIT = 1800.0


def measure_local(jobs: int) -> Dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        sweep = workdir / "multirun"
        command = [
            sys.executable,
            str(SLEEPER),
            "-m",
            f"x=range(0,{jobs})",
            "+seconds=600",
            "hydra/launcher=vertex_pipeline_local",
            f"hydra.sweep.dir={sweep}",
        ]
        launcher = _start(command, workdir)
        _wait(launcher, lambda: _record_says(sweep, lambda r: _some_running(r)))
        seconds = _stopped_seconds(launcher)
        return {"seconds": seconds, **_states(sweep, jobs)}


def measure_vertex(jobs: int) -> Dict[str, Any]:
    sys.path.insert(0, str(HERE.parent / "tests"))
    from fake_vertex import FakeVertex

    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        fake = FakeVertex(scratch_root=workdir / "vertex").start()
        try:
            fake.hold_tasks()
            command = [
                sys.executable,
                str(HERE / "_vertex_watch.py"),
                fake.endpoint,
                str(jobs),
                str(workdir / "sweep"),
            ]
            launcher = _start(command, workdir)
            _wait(launcher, lambda: _record_says(workdir / "sweep", lambda r: r["status_reads"]))
            seconds = _stopped_seconds(launcher)
            (job,) = fake.jobs.values()
            run_state = job.state.replace("PIPELINE_STATE_", "")
        finally:
            fake.stop()
        return {"seconds": seconds, **_states(workdir / "sweep", jobs), "run": run_state}


def _start(command: list, workdir: Path) -> "subprocess.Popen[bytes]":
    log = (workdir / "launcher.log").open("wb")
    return subprocess.Popen(command, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)


def _wait(launcher: "subprocess.Popen[bytes]", ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + START_LIMIT
    while not ready():
        if launcher.poll() is not None or time.monotonic() > deadline:
            launcher.kill()
            raise RuntimeError(f"the launcher never got its run going (exit {launcher.poll()})")
        time.sleep(0.2)
    time.sleep(1.0)  # a poll or two into the watch


def _stopped_seconds(launcher: "subprocess.Popen[bytes]") -> float:
    started = time.perf_counter()
    launcher.send_signal(signal.SIGTERM)
    launcher.wait()
    seconds = time.perf_counter() - started
    if launcher.returncode != 128 + signal.SIGTERM:
        raise RuntimeError(f"the launcher exited {launcher.returncode} on SIGTERM")
    return seconds


def _record_says(record_dir: Path, test: Callable[[Dict[str, Any]], Any]) -> bool:
    for path in record_dir.glob("vertex_pipeline/*/run.json"):
        try:
            return bool(test(json.loads(path.read_text())))
        except (OSError, ValueError):
            return False  # being replaced: read it again
    return False


def _some_running(record: Dict[str, Any]) -> bool:
    return record["state"] == "RUNNING" and any(
        job["state"] == "RUNNING" for job in record["jobs"].values()
    )


def _states(record_dir: Path, jobs: int) -> Dict[str, Any]:
    """How many jobs' status files say they ended, and the run's recorded state."""
    (path,) = record_dir.glob("vertex_pipeline/*/run.json")
    record = json.loads(path.read_text())
    ended = 0
    for entry in record["jobs"].values():
        status = json.loads((path.parent / entry["dir"] / "vertex_status.json").read_text())
        ended += status["state"] in ENDED
    return {"jobs": jobs, "ended": ended, "recorded": record["state"]}


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    print("vertex", measure_vertex(count))
    print("local", measure_local(count))
