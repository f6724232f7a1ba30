"""hydra.launcher.wait=false: submit, record, say how to attach, and end at once."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from apputil import read_json, run_app
from cliutil import COMMAND, run_cli
from fake_vertex import FakeVertex
from google.cloud import storage
from vertexutil import vertex_overrides

VERTEX = "hydra/launcher=vertex_pipeline"
EXAMPLE = Path(__file__).parents[1] / "example_app" / "train.py"


def _printed_attach_command(output: str) -> str:
    match = re.search(r"^\s*(hydra-vertex-pipeline attach .+)$", output, re.MULTILINE)
    assert match, output
    return match.group(1)


def test_a_detached_sweep_ends_at_once_and_attach_collects_it(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    sweep = tmp_path / "multirun"
    fake_vertex.hold_tasks()  # nothing can end before the launcher does
    args = ["-m", "+x=1,3", VERTEX, f"hydra.sweep.dir={sweep}", "hydra.launcher.wait=false"]
    proc = run_app("flaky.py", [*args, *vertex_overrides(fake_vertex, gcs_bucket)], tmp_path)
    assert proc.returncode == 0, proc.stderr

    (job_id,) = fake_vertex.jobs
    command = _printed_attach_command(proc.stdout)
    assert shlex.split(command) == ["hydra-vertex-pipeline", "attach", str(sweep)]
    assert f"pipelines/runs/{job_id}" in proc.stdout
    for num in ("0", "1"):
        # No job dir claims a result it does not have.
        assert read_json(sweep / num / "vertex_status.json")["state"] == "PENDING"
        assert not (sweep / num / "vertex_result.pkl").exists()
        assert not (sweep / num / "artifact.txt").exists()
    assert read_json(sweep / "vertex_pipeline" / job_id / "run.json")["state"] == "PENDING"

    fake_vertex.release_tasks()
    argv = shlex.split(command)
    attached = subprocess.run(
        [str(COMMAND), *argv[1:]], capture_output=True, text=True, timeout=180
    )
    assert attached.returncode == 0, attached.stdout + attached.stderr
    for num, x in (("0", 1), ("1", 3)):
        assert (sweep / num / "artifact.txt").read_text() == f"x={x}\n"
        assert read_json(sweep / num / "vertex_status.json")["state"] == "SUCCEEDED"
    assert fake_vertex.requests["create"] == 1


def test_a_detached_single_run_ends_at_once_with_status_0(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    run_dir = tmp_path / "outputs"
    args = ["+x=3", VERTEX, f"hydra.run.dir={run_dir}", "hydra.launcher.wait=false"]
    proc = run_app("flaky.py", [*args, *vertex_overrides(fake_vertex, gcs_bucket)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert shlex.split(_printed_attach_command(proc.stdout))[2] == str(run_dir)

    attached = run_cli("attach", str(run_dir))
    assert attached.returncode == 0, attached.stdout
    assert (run_dir / "artifact.txt").read_text() == "x=3\n"
    assert read_json(run_dir / "vertex_status.json")["state"] == "SUCCEEDED"


def test_a_sweeper_that_needs_return_values_is_refused_before_anything_is_staged(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    sweep = tmp_path / "optuna"
    args = ["--config-name", "optuna", "-m", VERTEX, f"hydra.sweep.dir={sweep}"]
    args += [*vertex_overrides(fake_vertex, gcs_bucket), "hydra.launcher.wait=false"]
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode != 0
    assert "hydra.launcher.wait=false" in proc.stderr and "OptunaSweeper" in proc.stderr
    assert list(storage.Client().bucket(gcs_bucket).list_blobs()) == []
    assert fake_vertex.requests["create"] == 0
