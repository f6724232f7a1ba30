"""Where Hydra runs, the plugin runs: no SIGHUP or process groups (Windows), Windows-style names."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from apputil import APPS, read_json, wait_until

from hydra_plugins.hydra_vertex_pipeline_launcher._shared._storage import (
    UnsafeObjectName,
    safe_relative,
)

# Runs an app as `python app.py ...` would, in an interpreter without SIGHUP and os.killpg.
WITHOUT_SIGHUP_OR_KILLPG = textwrap.dedent(
    """
    import os, runpy, signal, sys
    del signal.SIGHUP
    del os.killpg
    app = sys.argv[1]
    sys.argv = sys.argv[1:]
    sys.path.insert(0, os.path.dirname(app))
    runpy.run_path(app, run_name="__main__")
    """
)


def test_runs_and_stops_its_steps_without_sighup_or_process_groups(tmp_path: Path) -> None:
    sweep, board = tmp_path / "multirun", tmp_path / "board"
    args = [
        "-m",
        "+x=0,1",
        f"+board={board}",
        "+sleep=120",
        "hydra/launcher=vertex_pipeline_local",
        f"hydra.sweep.dir={sweep}",
    ]
    launcher = subprocess.Popen(
        [sys.executable, "-c", WITHOUT_SIGHUP_OR_KILLPG, str(APPS / "rendezvous.py"), *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(lambda: len(list(board.glob("*.json"))) == 2)
        launcher.send_signal(signal.SIGTERM)
        output, _ = launcher.communicate(timeout=60)
    finally:
        launcher.kill()
    assert "Cancelled local:" in output, output
    for record in board.glob("*.json"):
        pid = json.loads(record.read_text())["pid"]
        wait_until(lambda pid=pid: not _alive(pid), timeout=15)
    for num in ("0", "1"):
        assert read_json(sweep / num / "vertex_status.json")["state"] == "CANCELLED"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (ended, not yet reaped by its parent) counts as ended.
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "zombie" in status.read_text())


@pytest.mark.parametrize(
    "name", ["..\\..\\evil.txt", "out\\..\\..\\x", "D:x", "C:\\x", "C:/x", "a/b:c"]
)
def test_windows_style_names_are_refused_under_windows_path_rules(name: str) -> None:
    with pytest.raises(UnsafeObjectName, match="refused stored object"):
        safe_relative(name, windows=True)


@pytest.mark.parametrize("name", ["ckpt-12:30:00.pt", "a\\b.txt"])
def test_colons_and_backslashes_are_plain_letters_elsewhere(name: str) -> None:
    # On POSIX these name one file below the folder, as the job wrote it.
    assert str(safe_relative(name, windows=False)) == name


def test_plain_names_pass() -> None:
    assert str(safe_relative("sub/dir/file-1.txt")) == "sub/dir/file-1.txt"
