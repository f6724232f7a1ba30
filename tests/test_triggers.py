"""dependentTasks and triggerPolicy, honoured as Vertex does by the local backend and the fake."""

# No `from __future__ import annotations` here: kfp reads the component annotations.
from pathlib import Path
from typing import Any, Callable, Dict, List

import yaml
from apputil import wait_until
from fake_vertex import FakeVertex
from kfp import compiler, dsl

from hydra_plugins.hydra_vertex_pipeline_launcher._backends._base import (
    RunContext,
    RunStatus,
    State,
)
from hydra_plugins.hydra_vertex_pipeline_launcher._backends._local import LocalBackend
from hydra_plugins.hydra_vertex_pipeline_launcher._backends._vertex import (
    NOT_TRIGGERED_ERROR,
    VertexBackend,
)
from hydra_plugins.hydra_vertex_pipeline_launcher._launch._build import _chain_lanes
from hydra_plugins.hydra_vertex_pipeline_launcher.config import settings_from

# Appends its name to the file `board`, then exits with `code` (an int constant renders "3" on
# both backends, as on Vertex).
MARK = (
    "import sys, time\n"
    "open(sys.argv[1], 'a').write(sys.argv[2] + '\\n')\n"
    "time.sleep(0.3)\n"
    "sys.exit(int(sys.argv[3]))\n"
)


@dsl.container_component
def mark(board: str, name: str, code: int):
    return dsl.ContainerSpec(
        image="python:3.11", command=["python", "-c"], args=[MARK, board, name, code]
    )


@dsl.container_component
def with_optional_input(board: str, extra: str = "x"):
    return dsl.ContainerSpec(image="python:3.11", command=["python", "-c"], args=[board, extra])


def _dependent_pipeline(board: Path, spec_path: Path) -> Path:
    """#0 fails; #1 waits for it to succeed (the default policy), #2 for it to end."""

    @dsl.pipeline(name="p-deps")
    def deps() -> None:
        first = mark(board=str(board), name="first", code=3).set_display_name("#0 fails")
        waits = mark(board=str(board), name="on-success", code=0).after(first)
        waits.set_display_name("#1 waits for success")
        ends = mark(board=str(board), name="on-end", code=0).after(first)
        ends.ignore_upstream_failure().set_display_name("#2 waits for the end")

    compiler.Compiler().compile(deps, str(spec_path))
    return spec_path


def _run(tmp_path: Path, run_id: str) -> RunContext:
    return RunContext(
        run_id=run_id,
        pipeline_name="p-deps",
        job_name="deps",
        local_dir=tmp_path / "run",
        staging_uri=str(tmp_path / "staging"),
    )


def _by_display_name(spec_path: Path, status: RunStatus) -> Dict[str, Any]:
    tasks = yaml.safe_load(spec_path.read_text())["root"]["dag"]["tasks"]
    return {tasks[key]["taskInfo"]["name"]: task for key, task in status.tasks.items()}


def _finished(read_status: Callable[[], RunStatus]) -> RunStatus:
    wait_until(lambda: read_status().state.terminal, timeout=60)
    return read_status()


def _assert_triggered_as_vertex(board: Path, tasks: Dict[str, Any], not_started: str) -> None:
    assert board.read_text().splitlines() == ["first", "on-end"]
    assert tasks["#0 fails"].state is State.FAILED
    assert tasks["#2 waits for the end"].state is State.SUCCEEDED
    skipped = tasks["#1 waits for success"]
    assert skipped.state is State.FAILED and skipped.started is None
    assert not_started in skipped.error


def test_the_local_backend_starts_a_task_as_its_trigger_policy_says(tmp_path: Path) -> None:
    board = tmp_path / "board.txt"
    spec_path = _dependent_pipeline(board, tmp_path / "pipeline.yaml")
    backend = LocalBackend(4, tmp_path, _run(tmp_path, "deps-1"))
    try:
        backend.submit(spec_path)
        status = _finished(backend.read_status)
    finally:
        backend.close()
    assert status.state is State.FAILED
    _assert_triggered_as_vertex(board, _by_display_name(spec_path, status), "not started")


def test_vertex_reports_an_untriggered_task_as_failed_saying_why(
    fake_vertex: FakeVertex, tmp_path: Path
) -> None:
    board = tmp_path / "board.txt"
    spec_path = _dependent_pipeline(board, tmp_path / "pipeline.yaml")
    settings = settings_from(
        {
            "project": "p",
            "location": "us-central1",
            "api_endpoint": fake_vertex.endpoint,
            "request_timeout": 10,
        }
    )
    backend = VertexBackend(settings, _run(tmp_path, "deps-2"))
    try:
        backend.submit(spec_path)
        status = _finished(backend.read_status)
    finally:
        backend.close()
    # The fake says what Vertex says of a task whose trigger policy is not met.
    assert fake_vertex.jobs["deps-2"].tasks["mark-2"].state == "NOT_TRIGGERED"
    assert status.state is State.FAILED
    _assert_triggered_as_vertex(board, _by_display_name(spec_path, status), NOT_TRIGGERED_ERROR)


def test_lanes_also_chain_tasks_with_optional_inputs_they_do_not_pass(tmp_path: Path) -> None:
    # kfp 2.17.3's ignore_upstream_failure() raises KeyError for such tasks (CustomJob wrappers).
    @dsl.pipeline(name="p-optional")
    def optional() -> None:
        tasks: List[Any] = [with_optional_input(board=str(n)) for n in range(3)]
        _chain_lanes(tasks, 1)

    spec_path = tmp_path / "optional.yaml"
    compiler.Compiler().compile(optional, str(spec_path))
    tasks = yaml.safe_load(spec_path.read_text())["root"]["dag"]["tasks"]
    assert tasks["with-optional-input-2"]["dependentTasks"] == ["with-optional-input"]
    assert tasks["with-optional-input-3"]["dependentTasks"] == ["with-optional-input-2"]
    for key in ("with-optional-input-2", "with-optional-input-3"):
        assert tasks[key]["triggerPolicy"] == {"strategy": "ALL_UPSTREAM_TASKS_COMPLETED"}
