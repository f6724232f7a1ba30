"""Runs the `hydra-vertex-pipeline` command as a user does, from this virtualenv's bin dir."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

from apputil import APPS

COMMAND = Path(sys.executable).parent / "hydra-vertex-pipeline"


def run_cli(
    *args: str, env: Optional[Dict[str, str]] = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """The command's stdout and stderr, together in .stdout, in the order written."""
    return subprocess.run(
        [str(COMMAND), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


def start_app_with_env(
    app: str, args: List[str], cwd: Path, env: Dict[str, str]
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(APPS / app), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def table_rows(output: str) -> Dict[str, List[str]]:
    """The status table's rows by job number: the cells split on runs of two spaces."""
    rows = {}
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("#  "))
    for line in lines[start + 1 :]:
        cells = [cell.strip() for cell in line.split("  ") if cell.strip()]
        if not cells or not cells[0].isdigit():
            break
        rows[cells[0]] = cells[1:]
    return rows
