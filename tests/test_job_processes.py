"""A job's processes live and die with its step, as in a container: what a job leaves running never
holds its step, a time limit or a cancel stops all of it, and local steps (of any mode, and of
hand-built pipelines) end with their launcher, SIGKILL included."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest
from apputil import APPS, read_json, run_app, start_app, wait_until
from cliutil import run_cli, table_rows
from fake_vertex import FakeVertex
from vertexutil import only_job, vertex_overrides

LOCAL = "hydra/launcher=vertex_pipeline_local"
COMMAND = "hydra.launcher.execution=command"
SPAWNER = f"hydra.launcher.command=[python,'{APPS / 'spawner.py'}']"


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie has ended: only its exit status is left)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def board_pids(board: Path) -> Dict[str, List[int]]:
    """Each job's processes as it wrote them: its own, its parent's, its child's."""
    return {path.stem: list(json.loads(path.read_text()).values()) for path in board.glob("*.json")}


def assert_all_ended(board: Path, timeout: float = 10) -> None:
    pids = [pid for job in board_pids(board).values() for pid in job]
    assert pids, "the jobs wrote their pids"
    wait_until(lambda: not any(alive(pid) for pid in pids), timeout=timeout)


def _sweep_args(sweep: Path, board: Path, *overrides: str) -> List[str]:
    return ["-m", f"+board={board}", *overrides, f"hydra.sweep.dir={sweep}"]


def _vertex(fake: FakeVertex, bucket: str) -> List[str]:
    return ["hydra/launcher=vertex_pipeline", *vertex_overrides(fake, bucket)]


def _launcher(backend: str, request: pytest.FixtureRequest) -> List[str]:
    """The local launcher, or the vertex one against the fake Vertex (started here)."""
    if backend == "local":
        return [LOCAL]
    fake = request.getfixturevalue("fake_vertex")
    return _vertex(fake, request.getfixturevalue("gcs_bucket"))


@pytest.mark.parametrize("backend", ["local", "vertex"])
def test_a_command_job_whose_child_holds_its_stderr_ends_with_its_outputs(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    sweep, board = tmp_path / "m", tmp_path / "board"
    launcher = _launcher(backend, request)
    # With a time limit that the held stderr once made every such job run into.
    overrides = ["+x=1,2", "+child=stderr", "hydra.launcher.timeout=8"]
    args = _sweep_args(sweep, board, *overrides, *launcher, COMMAND, SPAWNER)
    started = time.monotonic()
    proc = run_app("spawner.py", args, tmp_path)
    took = time.monotonic() - started

    assert proc.returncode == 0, proc.stderr
    assert took < 25, f"the children sleep 30 s; the sweep took {took:.0f} s"
    for num, x in (("0", 1), ("1", 2)):
        assert read_json(sweep / num / "vertex_status.json")["state"] == "SUCCEEDED"
        assert (sweep / num / "made.txt").read_text() == f"x={x}\n"
        assert (sweep / num / "spawner.log").is_file()
    assert_all_ended(board)


@pytest.mark.parametrize("backend", ["local", "vertex"])
def test_a_timed_out_command_job_is_stopped_with_everything_it_started(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    sweep, board = tmp_path / "m", tmp_path / "board"
    launcher = _launcher(backend, request)
    overrides = ["+x=1", "+child=session", "+hang=true", "hydra.launcher.timeout=4"]
    proc = run_app(
        "spawner.py", _sweep_args(sweep, board, *overrides, *launcher, COMMAND, SPAWNER), tmp_path
    )

    assert proc.returncode != 0
    status = read_json(sweep / "0" / "vertex_status.json")
    assert status["state"] == "FAILED" and "the job timed out after 4 s" in status["error"]
    assert (sweep / "0" / "made.txt").is_file()
    assert_all_ended(board)


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "SIGHUP", "hydra-vertex-pipeline cancel"])
def test_a_cancel_stops_a_command_job_that_ignores_sigterm_and_its_children(
    how: str, tmp_path: Path
) -> None:
    sweep, board = tmp_path / "m", tmp_path / "board"
    overrides = ["+x=1", "+child=session,stderr", "+hang=true", LOCAL, COMMAND, SPAWNER]
    launcher = start_app("spawner.py", _sweep_args(sweep, board, *overrides), tmp_path)
    try:
        wait_until(lambda: len(board_pids(board)) == 2, timeout=120)
        if how.startswith("SIG"):
            launcher.send_signal(getattr(signal, how))
        else:  # the command line asks the launcher, which runs the local run
            cancelled = run_cli("cancel", str(sweep))
            assert cancelled.returncode == 0, cancelled.stdout
            assert "was cancelled by its launcher" in cancelled.stdout
        launcher.communicate(timeout=60)
    finally:
        launcher.kill()
    for num in ("0", "1"):
        assert read_json(sweep / num / "vertex_status.json")["state"] == "CANCELLED"
    assert_all_ended(board)


def test_cancel_on_vertex_stops_a_command_job_and_its_children(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    sweep, board = tmp_path / "m", tmp_path / "board"
    overrides = ["+x=1", "+child=stderr", "+hang=true", "hydra.launcher.wait=false"]
    args = _sweep_args(
        sweep, board, *overrides, *_vertex(fake_vertex, gcs_bucket), COMMAND, SPAWNER
    )
    assert run_app("spawner.py", args, tmp_path).returncode == 0
    only_job(fake_vertex)
    wait_until(lambda: len(board_pids(board)) == 1, timeout=120)

    cancelled = run_cli("cancel", str(sweep))

    assert cancelled.returncode == 0, cancelled.stdout
    assert_all_ended(board)


SWEEP_KILLED = [
    "+x=1,2",
    "+child=session,stderr",
    "+hang=true",
    LOCAL,
    "hydra.launcher.local.max_parallel=4",
]


@pytest.mark.parametrize("mode", [["hydra.launcher.execution=payload"], [COMMAND, SPAWNER]])
def test_steps_of_a_killed_launcher_end_with_everything_they_started(
    mode: List[str], tmp_path: Path
) -> None:
    sweep, board = tmp_path / "m", tmp_path / "board"
    launcher = start_app("spawner.py", _sweep_args(sweep, board, *SWEEP_KILLED, *mode), tmp_path)
    # Each job's process, its step (its parent in command mode), and the child it started.
    _kill_once_started(launcher, board, jobs=4)


HAND_BUILT = """
import sys
from kfp import dsl
from hydra_plugins.hydra_vertex_pipeline_launcher.components import hydra_component, run_pipeline

app, board, output_dir = sys.argv[1:]
parameters = {"+board": str, "+x": int, "+child": str, "+hang": bool}
spawner = hydra_component("spawner", "img", ["python", app], parameters=parameters)

@dsl.pipeline(name="spawners")
def spawners():
    spawner(board=board, x=1, child="session", hang=True)
    spawner(board=board, x=2, child="stderr", hang=True)

run_pipeline(spawners, output_dir=output_dir, local={"max_parallel": 2})
"""


def test_steps_of_a_killed_hand_built_pipeline_end_with_everything_they_started(
    tmp_path: Path,
) -> None:
    board, script = tmp_path / "board", tmp_path / "spawners.py"
    script.write_text(HAND_BUILT)
    args = [sys.executable, str(script), str(APPS / "spawner.py"), str(board), str(tmp_path)]
    launcher = subprocess.Popen(
        args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    # Each app (the step itself), its keeper, and the child it started.
    _kill_once_started(launcher, board, jobs=2)
    attached = run_cli("attach", str(tmp_path))
    assert "run the pipeline again" in attached.stdout
    assert sorted(cells[0] for cells in table_rows(attached.stdout).values()) == [
        "spawner",
        "spawner-2",
    ], attached.stdout


def _kill_once_started(launcher: "subprocess.Popen[Any]", board: Path, jobs: int) -> None:
    """SIGKILL to the launcher once every job has started; then none of their processes runs."""
    try:
        wait_until(lambda: len(board_pids(board)) == jobs, timeout=120)
    finally:
        launcher.kill()
    launcher.communicate(timeout=30)
    assert_all_ended(board)
