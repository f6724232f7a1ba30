"""Command mode: each job's overrides are staged beside its configs, the spec carrying only their
digest, and a step runs nothing from a staged overrides file that is not what the launcher
staged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List

import yaml
from apputil import job_state, run_app, start_app, wait_until
from fake_vertex import FakeVertex
from vertexutil import only_job, sweep_args

from hydra_plugins.hydra_vertex_pipeline_launcher._shared import _layout

LOCAL = "hydra/launcher=vertex_pipeline_local"
COMMAND = "hydra.launcher.execution=command"
# One long value that a careless quoting would split, unquote or resolve, or a renderer fill in.
LONG = "a b,c='d' \"e\" {{$.inputs.parameters['job_num']}} é世 " * 40
TAMPERED = ["+fault=exit"]


def _task_constants(spec_path: Path) -> List[dict]:
    spec = yaml.safe_load(spec_path.read_text())
    return [
        {k: v["runtimeValue"]["constant"] for k, v in task["inputs"]["parameters"].items()}
        for task in spec["root"]["dag"]["tasks"].values()
    ]


def test_long_awkward_overrides_reach_each_job_staged_and_the_spec_stays_small(
    tmp_path: Path,
) -> None:
    sweep = tmp_path / "multirun"
    overrides = ["-m", "+x=1,2,3", "+fault=none", f"+long='{_escaped(LONG)}'"]
    proc = run_app("faults.py", [*overrides, LOCAL, COMMAND, f"hydra.sweep.dir={sweep}"], tmp_path)
    assert proc.returncode == 0, proc.stderr

    (run_dir,) = (sweep / "vertex_pipeline").iterdir()
    for num in range(3):
        config = yaml.safe_load((sweep / str(num) / ".hydra" / "config.yaml").read_text())
        assert config["long"] == LONG and config["x"] == num + 1
        staged = json.loads((run_dir / _layout.job_command_overrides(num)).read_text())
        assert f"+long='{_escaped(LONG)}'" in staged
    spec_text = (run_dir / "pipeline.yaml").read_text()
    assert "parameters['job_num']}} é" not in spec_text and "é世" not in spec_text
    constants = _task_constants(run_dir / "pipeline.yaml")
    assert sorted(c["job_num"] for c in constants) == ["0", "1", "2"]
    assert all(len(c["job_digest"]) == 64 for c in constants)


def _escaped(value: str) -> str:
    """value inside a single-quoted Hydra override: quotes and backslashes escaped."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _check_refused(sweep: Path, output: str) -> None:
    assert job_state(sweep / "0") == "SUCCEEDED"
    assert job_state(sweep / "1") == "FAILED"
    status = json.loads((sweep / "1" / "vertex_status.json").read_text())
    assert "refusing it" in status["error"] and "command_overrides.json" in status["error"]
    assert not (sweep / "1" / "before.txt").exists(), "the tampered job must not run"
    assert (sweep / "0" / "before.txt").read_text() == "fault=hang\n"


def test_a_tampered_staged_overrides_file_is_refused_by_the_local_step(tmp_path: Path) -> None:
    sweep = tmp_path / "multirun"
    args = ["-m", "+x=1", "+fault=hang,none", "+hang_for=4", LOCAL, COMMAND]
    # One step at a time: job 1 starts once job 0 (hanging a few seconds) has ended.
    args += ["hydra.launcher.max_parallel=1", f"hydra.sweep.dir={sweep}"]
    launcher = start_app("faults.py", args, tmp_path)
    wait_until(lambda: job_state(sweep / "0") == "RUNNING")
    (run_dir,) = (sweep / "vertex_pipeline").iterdir()
    (run_dir / _layout.job_command_overrides(1)).write_text(json.dumps(TAMPERED))
    output, _ = launcher.communicate(timeout=120)
    assert launcher.returncode != 0
    _check_refused(sweep, output)


def test_a_tampered_staged_overrides_file_is_refused_by_the_step_on_vertex(
    tmp_path: Path, fake_vertex: FakeVertex, gcs_bucket: str
) -> None:
    from google.cloud import storage

    sweep = tmp_path / "multirun"
    fake_vertex.hold_tasks()
    args = sweep_args(fake_vertex, gcs_bucket, sweep, "+x=1", "+fault=hang,none", "+hang_for=0")
    launcher = start_app("faults.py", [*args, COMMAND], tmp_path)
    run_id = only_job(fake_vertex)
    name = f"hydra/{run_id}/{_layout.job_command_overrides(1)}"
    blob = storage.Client().bucket(gcs_bucket).blob(name)
    assert json.loads(blob.download_as_bytes())[-1].startswith("hydra.job.id=")
    blob.upload_from_string(json.dumps(TAMPERED))
    fake_vertex.release_tasks()
    output, _ = launcher.communicate(timeout=180)
    assert launcher.returncode != 0
    _check_refused(sweep, output)
