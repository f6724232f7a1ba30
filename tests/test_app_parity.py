"""Apps behave in their jobs as with Hydra's basic launcher; a step hands back little."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

import pytest
from apputil import APPS, kept_result, multirun_returns, read_json, run_app
from fake_vertex import FakeVertex
from hydra.core.utils import JobReturn
from omegaconf import OmegaConf
from vertexutil import vertex_overrides

LOCAL = "hydra/launcher=vertex_pipeline_local"
FAILING_LINE = next(
    n
    for n, line in enumerate((APPS / "own_names.py").read_text().splitlines(), 1)
    if line.endswith("# FAILS HERE")
)


def _own_names(tmp_path: Path, launcher: str, shape: str, *overrides: str) -> Path:
    """own_names.py with x=1,3 into a sweep dir named after the launcher; the sweep dir."""
    sweep = tmp_path / launcher
    app = [str(APPS / "own_names.py")] if shape == "script" else ["-m", "own_names"]
    env = {**os.environ, "PYTHONPATH": str(APPS)}
    args = ["-m", "+x=1,3", f"hydra/launcher={launcher}", f"hydra.sweep.dir={sweep}", *overrides]
    proc = subprocess.run(
        [sys.executable, *app, *args], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return sweep


@pytest.mark.parametrize("shape", ["script", "module"])
def test_an_apps_own_names_resolve_in_its_jobs_as_with_the_basic_launcher(
    tmp_path: Path, shape: str
) -> None:
    basic = _own_names(tmp_path, "basic", shape)
    ours = _own_names(tmp_path, "vertex_pipeline_local", shape)
    for num in ("0", "1"):
        seen = read_json(ours / num / "names.json")
        assert seen == read_json(basic / num / "names.json")
        assert all(seen.values())


def test_a_failing_job_names_the_apps_file_and_line_everywhere(tmp_path: Path) -> None:
    sweep = tmp_path / "m"
    args = ["-m", "+x=1", "+fail=true", LOCAL, f"hydra.sweep.dir={sweep}"]
    proc = run_app("own_names.py", args, tmp_path)
    assert proc.returncode != 0
    where = f'File "{APPS / "own_names.py"}", line {FAILING_LINE}, in main'
    source = 'raise RuntimeError(f"x={cfg.x} fails on purpose")  # FAILS HERE'
    error = read_json(sweep / "0" / "vertex_status.json")["error"]
    for shown in (proc.stderr, error):
        assert where in shown and source in shown
        assert "<dynamic-code>" not in shown
    # As Hydra's basic launcher leaves it (#18): the job's own log holds no traceback.
    assert "Traceback" not in (sweep / "0" / "own_names.log").read_text()


def test_without_the_script_in_the_image_the_task_runs_as_pickled_and_says_so(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    # Launched as `python own_names.py` from its folder, its code not shipped: the steps' fresh
    # working dirs (the image's) have no own_names.py.
    shutil.copy(APPS / "own_names.py", tmp_path / "own_names.py")
    sweep = tmp_path / "m"
    args = ["-m", "+x=1", "+fail=true", "hydra/launcher=vertex_pipeline"]
    args += ["hydra.launcher.ship_code=false"]
    args += [f"hydra.sweep.dir={sweep}", *vertex_overrides(fake_vertex, gcs_bucket)]
    proc = subprocess.run(
        [sys.executable, "own_names.py", *args], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode != 0
    job_log = (sweep / "0" / "own_names.log").read_text()
    assert "script own_names.py is not found here" in job_log
    assert "pickled it by value" in job_log
    # The launcher's file name and line, and its source where the step can read it.
    where = f'File "{tmp_path / "own_names.py"}", line {FAILING_LINE}, in main'
    error = read_json(sweep / "0" / "vertex_status.json")["error"]
    for shown in (proc.stderr, error):
        assert where in shown
        assert "<dynamic-code>" not in shown
    assert "Traceback" not in job_log  # as Hydra's basic launcher leaves it (#18)
    # Why it ran by value is in the terminal too, where a failure is read first.
    assert "script own_names.py is not found here" in proc.stdout + proc.stderr


def test_an_unpicklable_global_of_the_task_is_named_before_anything_is_uploaded(
    tmp_path: Path,
) -> None:
    sweep = tmp_path / "m"
    proc = run_app("module_lock.py", ["-m", "+x=1", LOCAL, f"hydra.sweep.dir={sweep}"], tmp_path)
    assert proc.returncode != 0
    assert "global 'LOCK' used by function __main__.main (a _thread.lock)" in proc.stderr
    assert "inside the task function" in proc.stderr
    assert not (sweep / "vertex_pipeline").exists(), "no half run is left behind"


def test_a_return_value_that_cannot_be_pickled_fails_its_job_naming_its_type(
    tmp_path: Path,
) -> None:
    sweep = tmp_path / "m"
    args = ["-m", "+x=1", "+return_lock=true", LOCAL, f"hydra.sweep.dir={sweep}"]
    proc = run_app("own_names.py", args, tmp_path)
    assert proc.returncode != 0
    status = read_json(sweep / "0" / "vertex_status.json")
    assert status["state"] == "FAILED"
    assert "the job's return value (a _thread.lock) could not be pickled back" in status["error"]


def test_a_step_hands_back_its_outcome_not_its_configs(tmp_path: Path) -> None:
    sweep = tmp_path / "m"
    proc = run_app("own_names.py", ["-m", "+x=3", LOCAL, f"hydra.sweep.dir={sweep}"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    (result_file,) = sweep.glob("vertex_pipeline/*/jobs/0/result.pkl")
    # Readable without the app's modules, and a plain value without pickle at all.
    result = kept_result(sweep, sweep / "0")
    assert dataclasses.asdict(result) == {
        "run_id": result_file.parent.parent.parent.name,
        "job": 0,
        "status": "COMPLETED",
        "value": {"json": 3},
        "pickled": b"",
        "traceback": "",
        "attempt": 1,
        "ran_in_output_dir": False,
        "upload_error": None,
        "overrides": ["+x=3"],
        "warnings": [],
    }
    # Kept in the job dir too: resume rebuilds the JobReturn from it.
    assert (sweep / "0" / "vertex_result.pkl").read_bytes() == result_file.read_bytes()


# hydra.callbacks: each launcher config of ours registers the single-run callback.
LAUNCHER_SPECIFIC = ("hydra.launcher", "hydra.overrides.hydra", "hydra.callbacks")


def _hydra_cfg_but_the_launcher(job_return: JobReturn) -> Dict[str, Any]:
    """The launcher's own settings (and callbacks) are each launcher's to choose."""
    hydra_cfg = OmegaConf.to_container(job_return.hydra_cfg, resolve=False)
    assert isinstance(hydra_cfg, dict)
    for key in LAUNCHER_SPECIFIC:
        parent, _, leaf = key.rpartition(".")
        node = hydra_cfg
        for part in parent.split("."):
            node = node[part]
        node.pop(leaf)
    hydra_cfg["hydra"]["runtime"]["choices"].pop("hydra/launcher")
    return hydra_cfg


@pytest.mark.parametrize("chdir", [True, False])
def test_job_returns_are_those_of_the_basic_launcher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chdir: bool
) -> None:
    monkeypatch.chdir(tmp_path)
    tests_dir = str(Path(__file__).parent)
    overrides = ["+x=1,2,3", "hydra.sweep.dir=a/../b/sw", f"hydra.job.chdir={chdir}"]
    basic = multirun_returns(["hydra/launcher=basic", *overrides])
    local_overrides = [*overrides, f"+hydra.launcher.env.PYTHONPATH={tests_dir}"]
    ours = multirun_returns(["hydra/launcher=vertex_pipeline_local", *local_overrides])
    assert len(ours) == len(basic) == 3
    for theirs, mine in zip(basic, ours):
        assert mine.overrides == theirs.overrides
        assert mine.cfg == theirs.cfg
        assert _hydra_cfg_but_the_launcher(mine) == _hydra_cfg_but_the_launcher(theirs)
        assert mine.working_dir == theirs.working_dir
        assert mine.task_name == theirs.task_name
        assert mine.status == theirs.status
        assert mine.return_value == theirs.return_value


def test_an_app_with_its_own_class_and_an_extra_python_path_runs_as_with_basic(
    tmp_path: Path,
) -> None:
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "extra_helper.py").write_text(
        'NAME = "extra_helper"\n\ndef scale(x, factor):\n    return x * factor\n'
    )
    sweeps = {}
    for launcher, extra_args, env in (
        ("basic", [], {**os.environ, "PYTHONPATH": str(extra)}),
        ("vertex_pipeline_local", [f"+hydra.launcher.env.PYTHONPATH={extra}"], None),
    ):
        sweeps[launcher] = sweep = tmp_path / launcher
        args = ["-m", "+x=1,2,3", f"hydra/launcher={launcher}", f"hydra.sweep.dir={sweep}"]
        proc = run_app("extra_path.py", [*args, *extra_args], tmp_path, env)
        assert proc.returncode != 0
        assert "x=2 is refused by extra_helper" in proc.stderr
        assert 'extra_path.py", line' in proc.stderr
    for num, value in (("0", 10), ("2", 30)):
        for sweep in sweeps.values():
            assert json.loads((sweep / num / "value.json").read_text()) == value
    status = read_json(sweeps["vertex_pipeline_local"] / "1" / "vertex_status.json")
    assert status["state"] == "FAILED" and 'extra_path.py", line' in status["error"]


def test_the_apps_own_logger_is_named_as_with_basic(tmp_path: Path) -> None:
    for launcher in ("basic", "vertex_pipeline_local"):
        sweep = tmp_path / launcher
        args = ["-m", "+x=1", f"hydra/launcher={launcher}", f"hydra.sweep.dir={sweep}"]
        assert run_app("flaky.py", args, tmp_path).returncode == 0
        assert "[__main__][INFO] - job with x=1 starts" in (sweep / "0" / "flaky.log").read_text()


def _in_image_app(tmp_path: Path, *overrides: str) -> Path:
    """apps/in_image/app.py swept over x=1,2 on the local backend from a copy of its folder;
    the sweep dir."""
    launch = tmp_path / "launch"
    shutil.copytree(APPS / "in_image", launch, ignore=shutil.ignore_patterns("__py*"))
    args = ["app.py", "-m", "x=1,2", LOCAL, "hydra.sweep.dir=m", *overrides]
    proc = subprocess.run([sys.executable, *args], cwd=launch, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return launch / "m"


def test_a_job_sees_the_apps_argv_and_can_start_a_copy_of_itself(tmp_path: Path) -> None:
    sweep = _in_image_app(tmp_path, "reexec=true")
    for num, x in (("0", 1), ("1", 2)):
        seen = read_json(sweep / num / "seen.json")
        assert seen["argv"] == ["app.py", "-m", "x=1,2", LOCAL, "hydra.sweep.dir=m", "reexec=true"]
        assert seen["copy_exit"] == 0
        copy = read_json(sweep / num / "copy" / "child.json")
        assert copy["x"] == x and copy["argv"][:1] == ["app.py"]


def test_a_class_of_the_script_pickled_by_a_job_loads_in_a_plain_interpreter(
    tmp_path: Path,
) -> None:
    sweep = _in_image_app(tmp_path, "pickle_model=true")
    model = sweep / "1" / "model.pkl"
    assert b"__mp_main__" not in model.read_bytes()
    load = (
        "import __main__, pickle, sys; from app import Model; __main__.Model = Model; "
        "print(pickle.loads(open(sys.argv[1], 'rb').read()).size)"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", load, str(model)], cwd=sweep.parent, capture_output=True, text=True
    )
    assert loaded.stdout.strip() == "2", loaded.stderr


def test_hydra_logging_applies_in_a_step_as_in_hydras_own_process(tmp_path: Path) -> None:
    sweep = _in_image_app(tmp_path, "hydra/job_logging=none")
    (step_log,) = sweep.glob("vertex_pipeline/*/steps/hydra-job-1.log")
    assert "[HYDRA] x=2 logs as __main__" in step_log.read_text()


@pytest.mark.parametrize("mode", ["payload", "command"])
def test_hydra_job_id_and_num_are_the_basic_launchers(tmp_path: Path, mode: str) -> None:
    ours = [LOCAL, f"hydra.launcher.execution={mode}"]
    for shape, args in (
        ("-m", ["-m", "+x=1,2", "hydra.sweep.dir={}"]),
        ("run", ["+x=1", "hydra.run.dir={}"]),
    ):
        seen = {}
        for name, launcher in (("basic", []), ("ours", ours)):
            out = tmp_path / f"{shape}-{name}"
            proc = run_app("job_ids.py", [*(a.format(out) for a in args), *launcher], tmp_path)
            assert proc.returncode == 0, proc.stderr
            seen[name] = {
                str(p.relative_to(out)): read_json(p)
                for p in [*out.glob("ids.json"), *out.glob("*/ids.json")]
            }
        assert seen["ours"] == seen["basic"] and seen["basic"]
