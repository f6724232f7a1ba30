"""Runs the small Hydra apps in tests/apps as a user would: `python app.py -m ...`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

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


def read_json(path: Path) -> Dict[str, Any]:
    loaded: Dict[str, Any] = json.loads(path.read_text())
    return loaded
