"""Runs the small Hydra apps in tests/apps as a user would: `python app.py -m ...`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

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


def read_json(path: Path) -> Dict[str, Any]:
    loaded: Dict[str, Any] = json.loads(path.read_text())
    return loaded
