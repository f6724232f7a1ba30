"""Runs the small Hydra apps in tests/apps as a user would: `python app.py -m ...`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from hydra._internal.hydra import Hydra
from hydra.core.global_hydra import GlobalHydra
from hydra.core.utils import JobReturn

from hydra_plugins.hydra_vertex_pipeline_launcher._launch._resume import verified
from hydra_plugins.hydra_vertex_pipeline_launcher._shared._layout import JOB_RESULT_FILE
from hydra_plugins.hydra_vertex_pipeline_launcher._shared._result import SealedResult

APPS = Path(__file__).parent / "apps"


def run_app(
    app: str, args: List[str], cwd: Path, env: Optional[Dict[str, str]] = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(APPS / app), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_app(app: str, args: List[str], cwd: Path) -> subprocess.Popen[str]:
    """The app running in the background, its output (stdout and stderr) on .communicate()."""
    return subprocess.Popen(
        [sys.executable, str(APPS / app), *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_until(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def job_state(job_dir: Path) -> Optional[str]:
    """The state in a job's vertex_status.json, None before the launcher wrote one."""
    try:
        return str(read_json(job_dir / "vertex_status.json")["state"])
    except FileNotFoundError:
        return None


def read_json(path: Path) -> Dict[str, Any]:
    loaded: Dict[str, Any] = json.loads(path.read_text())
    return loaded


def multirun_returns(overrides: List[str]) -> List[JobReturn]:
    """An in-process multirun of apps/returns_task.py, as Hydra's own test suites launch: the
    JobReturns its sweeper got."""
    from apps.returns_task import task

    hydra_ = Hydra.create_main_hydra_file_or_module(
        calling_file=str(APPS / "returns_task.py"),
        calling_module=None,
        config_path=None,
        job_name="ret",
    )
    try:
        sweeps = hydra_.multirun(
            config_name=None, task_function=task, overrides=overrides, with_log_configuration=False
        )
    finally:
        GlobalHydra().clear()
    return [job_return for batch in sweeps for job_return in batch]


def kept_result(record_dir: Path, job_dir: Path) -> SealedResult:
    """A job's result as collect kept it in its dir, its seal checked with its run's key."""
    return verified((job_dir / JOB_RESULT_FILE).read_bytes(), record_dir)
