"""hydra.launcher.execution=command: each step runs the app's own command with the job's
overrides, and the job behaves as with Hydra's basic launcher and as in payload mode."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict

import pytest
import yaml
from apputil import APPS, kept_result, read_json, run_app, start_app, wait_until
from fake_vertex import FakeVertex
from image_env import copy_package
from test_customjob import needs_gcpc
from test_job_faults import _launch, check_faults
from venvutil import fresh_venv, pip_install
from vertexutil import sweep_args, vertex_overrides

from hydra_plugins.hydra_vertex_pipeline_launcher import config
from hydra_plugins.hydra_vertex_pipeline_launcher._launch._collect import load_value

LOCAL = "hydra/launcher=vertex_pipeline_local"
COMMAND = "hydra.launcher.execution=command"
EXAMPLE = Path(__file__).parents[1] / "example_app" / "train.py"
# Values that a careless quoting would split, join, unquote or resolve.
AWKWARD = [
    "+s='a b'",
    "+c='x,y'",
    "+q='say \"hi\" it\\'s'",
    "+e='k=v'",
    "+u='héllo_世界'",
    "+i='\\${x}'",
    "+l=[1,'a b',3]",
    "+p='{{$.inputs.parameters[\"job_num\"]}}'",
]
SWEPT = ["+x=1,2", "+fault=none", "+w='p q','r,s'"]


def _sweep(app: str, cwd: Path, sweep: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_app(app, ["-m", *args, f"hydra.sweep.dir={sweep}"], cwd)


def _hydra_files(sweep: Path) -> Dict[str, str]:
    """Each job's overrides.yaml and config.yaml, by path below the sweep dir."""
    return {
        str(path.relative_to(sweep)): path.read_text(encoding="utf-8")
        for path in sorted(sweep.glob("*/.hydra/*.yaml"))
        if path.name in ("overrides.yaml", "config.yaml")
    }


def test_awkward_override_values_reach_each_job_as_with_the_basic_launcher(
    tmp_path: Path,
) -> None:
    basic = _sweep("faults.py", tmp_path, tmp_path / "basic", *SWEPT, *AWKWARD)
    assert basic.returncode == 0, basic.stderr
    ours = _sweep("faults.py", tmp_path, tmp_path / "ours", *SWEPT, *AWKWARD, LOCAL, COMMAND)
    assert ours.returncode == 0, ours.stderr

    expected = _hydra_files(tmp_path / "basic")
    assert len(expected) == 8
    assert _hydra_files(tmp_path / "ours") == expected
    config = yaml.safe_load((tmp_path / "ours" / "3" / ".hydra" / "config.yaml").read_text())
    assert config["w"] == "r,s" and config["q"] == 'say "hi" it\'s'
    assert config["u"] == "héllo_世界" and config["l"] == [1, "a b", 3]
    for num in range(4):
        job_dir = tmp_path / "ours" / str(num)
        assert read_json(job_dir / "vertex_status.json")["state"] == "SUCCEEDED"
        assert (job_dir / "before.txt").read_text() == "fault=none\n"
        assert "job with fault=none starts" in (job_dir / "faults.log").read_text()
    # Each step got its overrides as one task input, no payload staged.
    staged = list((tmp_path / "ours" / "vertex_pipeline").glob("*/jobs/0/*"))
    names = {path.name for path in staged}
    assert "payload.pkl" not in names and {"config.yaml", "result.pkl"} <= names


def test_job_dirs_named_after_awkward_overrides_are_the_basic_launchers(tmp_path: Path) -> None:
    # The job's output dir reaches its command as an override value itself.
    named = [
        "+x=1,2",
        "+fault=none",
        *AWKWARD[:5],
        "hydra.sweep.subdir=${hydra.job.override_dirname}",
    ]
    basic = _sweep("faults.py", tmp_path, tmp_path / "basic", *named)
    assert basic.returncode == 0, basic.stderr
    ours = _sweep("faults.py", tmp_path, tmp_path / "ours", *named, LOCAL, COMMAND)
    assert ours.returncode == 0, ours.stderr

    expected = _hydra_files(tmp_path / "basic")
    assert len(expected) == 4 and any("+q='say" in name for name in expected)
    assert _hydra_files(tmp_path / "ours") == expected
    for status in (tmp_path / "ours").glob("*/vertex_status.json"):
        assert read_json(status)["state"] == "SUCCEEDED"


def _optuna_results(sweep: Path, *args: str) -> Dict[str, object]:
    command = [sys.executable, str(EXAMPLE), "--config-name", "optuna", "-m", *args]
    command.append(f"hydra.sweep.dir={sweep}")
    subprocess.run(command, cwd=sweep.parent, check=True, capture_output=True, timeout=400)
    results: Dict[str, object] = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    return results


def test_return_values_reach_optuna_exactly_as_in_payload_mode(tmp_path: Path) -> None:
    payload = _optuna_results(tmp_path / "payload", LOCAL)
    command = _optuna_results(tmp_path / "command", LOCAL, COMMAND)
    assert command == payload
    assert len(list((tmp_path / "command").glob("*/model.json"))) == 12


def test_each_fault_is_named_and_keeps_what_its_job_wrote_as_in_payload_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    sweep = tmp_path / "m"
    faults = ["exit", "kill", "hang", "lock", "none"]
    started = time.monotonic()
    returns = _launch(
        [
            LOCAL,
            COMMAND,
            f"hydra.launcher.command=[python,'{APPS / 'faults.py'}']",
            f"hydra.sweep.dir={sweep}",
            "hydra.launcher.timeout=5",
            "hydra.launcher.local.max_parallel=5",
        ],
        [[f"+fault={fault}", f"+x={x}"] for x, fault in enumerate(faults)],
    )
    assert time.monotonic() - started < 90, "the hang (120 s) was stopped at its time limit"

    errors = check_faults(sweep, faults, returns)
    assert f'File "{APPS / "faults.py"}"' in errors["hang"], "where the job was stopped"
    assert "in task" in errors["hang"]


def test_a_raising_job_names_the_apps_file_and_line_everywhere(tmp_path: Path) -> None:
    sweep = tmp_path / "m"
    proc = _sweep("own_names.py", tmp_path, sweep, "+x=1", "+fail=true", LOCAL, COMMAND)
    assert proc.returncode != 0
    failing_line = next(
        n
        for n, line in enumerate((APPS / "own_names.py").read_text().splitlines(), 1)
        if line.endswith("# FAILS HERE")
    )
    where = f'File "{APPS / "own_names.py"}", line {failing_line}, in main'
    error = read_json(sweep / "0" / "vertex_status.json")["error"]
    for shown in (proc.stderr, error):
        assert where in shown and "x=1 fails on purpose" in shown
    # As Hydra's basic launcher leaves it (#18): the job's own log holds no traceback.
    assert "Traceback" not in (sweep / "0" / "own_names.log").read_text()


def test_a_retried_steps_last_attempt_speaks_as_in_payload_mode(tmp_path: Path) -> None:
    sweep = tmp_path / "m"
    args = ["+x=1", "+then=succeed", f"+board={tmp_path / 'board'}", LOCAL, COMMAND]
    proc = _sweep("retried.py", tmp_path, sweep, *args, "hydra.launcher.retries=1")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "board").iterdir()) == ["attempt-1", "attempt-2"]
    assert read_json(sweep / "0" / "vertex_status.json")["state"] == "SUCCEEDED"
    result = kept_result(sweep, sweep / "0")
    assert result.attempt == 2 and load_value(result) == "attempt 2 succeeded"


def test_a_cancelled_run_cancels_the_jobs_command_too(tmp_path: Path) -> None:
    sweep = tmp_path / "m"
    args = ["-m", "+x=1", "+fault=hang", LOCAL, COMMAND, f"hydra.sweep.dir={sweep}"]
    launcher = start_app("faults.py", args, tmp_path)
    try:
        wait_until(lambda: (sweep / "0" / "before.txt").is_file(), timeout=120)
        launcher.send_signal(signal.SIGTERM)
        launcher.communicate(timeout=60)
    finally:
        launcher.kill()
    # As a payload step's: the job was cancelled, it did not fail.
    assert read_json(sweep / "0" / "vertex_status.json")["state"] == "CANCELLED"
    assert not (sweep / "0" / "vertex_result.pkl").exists()


def test_a_command_that_dies_before_its_job_starts_says_why(tmp_path: Path) -> None:
    sweep = tmp_path / "m"
    command = "hydra.launcher.command=[python,no_such_app.py]"
    proc = _sweep("faults.py", tmp_path, sweep, "+x=1", "+fault=none", LOCAL, COMMAND, command)
    assert proc.returncode != 0
    status = read_json(sweep / "0" / "vertex_status.json")
    assert status["state"] == "FAILED"
    assert "the job's command exited with status 2 before the job started" in status["error"]
    assert "no_such_app.py" in status["error"], "the tail of its stderr"


def test_a_command_that_sweeps_fails_instead_of_launching_runs_from_its_step(
    tmp_path: Path,
) -> None:
    sweep = tmp_path / "m"
    command = f"hydra.launcher.command=[python,'{APPS / 'faults.py'}',-m]"
    proc = _sweep("faults.py", tmp_path, sweep, "+x=1", "+fault=none", LOCAL, COMMAND, command)
    assert proc.returncode != 0
    error = read_json(sweep / "0" / "vertex_status.json")["error"]
    assert "A pipeline step started a multirun with this launcher" in error
    assert "hydra.launcher.command" in error
    runs = list((sweep / "vertex_pipeline").glob("*/run.json"))
    assert len(runs) == 1, "no run was launched from the step"


def test_an_in_process_launch_must_name_its_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    # Launched from pytest: `python -m pytest` is no way to start the task in a step.
    # By name: Hydra's plugin scan executes config.py again, a second LauncherConfigError.
    with pytest.raises(Exception, match=r"hydra.launcher.command=\[python") as raised:
        _launch([LOCAL, COMMAND, f"hydra.sweep.dir={tmp_path / 'm'}"], [["+x=1", "+fault=none"]])
    assert type(raised.value).__name__ == "LauncherConfigError"
    assert not (tmp_path / "m" / "vertex_pipeline").exists(), "refused before anything ran"


def test_a_run_without_multirun_runs_as_the_apps_command(tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    # An interpolation reaches the app's command as written, as Hydra records it in-process.
    secret = "+token=${oc.env:VERTEX_TEST_TOKEN}"
    args = ["+x=2", "+fault=none", secret, LOCAL, COMMAND, f"hydra.run.dir={run_dir}"]
    proc = run_app("faults.py", args, tmp_path, env={**os.environ, "VERTEX_TEST_TOKEN": "s3cr3t"})
    assert proc.returncode == 0, proc.stderr
    assert read_json(run_dir / "vertex_status.json")["state"] == "SUCCEEDED"
    assert (run_dir / "before.txt").read_text() == "fault=none\n"
    overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
    assert overrides == ["+x=2", "+fault=none", secret]


def test_on_vertex_each_step_runs_the_app_from_the_images_working_dir(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    launch_dir, image_dir = tmp_path / "launch", tmp_path / "image"
    for folder in (launch_dir, image_dir):
        folder.mkdir()
        shutil.copy(APPS / "faults.py", folder / "faults.py")
    fake_vertex.image_dir = image_dir
    args = ["+x=1", "+fault=none,hang", "+hang_for=15", *AWKWARD]

    def sweep(name: str, *launcher: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "faults.py", "-m", *args, *launcher]
        command.append(f"hydra.sweep.dir={launch_dir / name}")
        return subprocess.run(command, cwd=launch_dir, capture_output=True, text=True, timeout=240)

    basic = sweep("basic", "hydra.job.chdir=true", "+hydra.job.env_set.X=1")
    assert basic.returncode == 0, basic.stderr  # it waited out the hang
    vertex = ["hydra/launcher=vertex_pipeline", *vertex_overrides(fake_vertex, gcs_bucket)]
    vertex.append("hydra.launcher.timeout=5")
    ours = sweep("ours", "hydra.job.chdir=true", "+hydra.job.env_set.X=1", COMMAND, *vertex)
    assert ours.returncode != 0, "the hang timed out"

    assert _hydra_files(launch_dir / "ours") == _hydra_files(launch_dir / "basic")
    healthy, hung = launch_dir / "ours" / "0", launch_dir / "ours" / "1"
    assert read_json(healthy / "vertex_status.json")["state"] == "SUCCEEDED"
    assert (healthy / "before.txt").read_text() == "fault=none\n"
    assert "job with fault=none starts" in (healthy / "faults.log").read_text()
    status = read_json(hung / "vertex_status.json")
    assert status["state"] == "FAILED" and "the job timed out after 5 s" in status["error"]
    assert (hung / "before.txt").read_text() == "fault=hang\n"
    assert "the job timed out after 5 s" in (hung / "faults.log").read_text()


def test_custom_job_steps_run_the_command_with_awkward_overrides_on_vertex(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    needs_gcpc()
    sweep = tmp_path / "m"
    settings = ["hydra.launcher.machine_type=n1-highmem-8", COMMAND]
    args = sweep_args(fake_vertex, gcs_bucket, sweep, "+x=1", "+fault=none", *AWKWARD, *settings)
    proc = run_app("faults.py", args, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(fake_vertex.custom_jobs) == 1
    basic = _sweep("faults.py", tmp_path, tmp_path / "basic", "+x=1", "+fault=none", *AWKWARD)
    assert basic.returncode == 0, basic.stderr
    assert _hydra_files(sweep) == _hydra_files(tmp_path / "basic")


@pytest.mark.parametrize(
    ("node", "named"),
    [
        ({"execution": "pickle"}, "hydra.launcher.execution='pickle'"),
        ({"command": ["python", "train.py"]}, "hydra.launcher.execution=command"),
        ({"execution": "command", "command": []}, "hydra.launcher.command=[]"),
    ],
)
def test_wrong_execution_settings_name_the_setting_and_the_fix(
    node: Dict[str, object], named: str
) -> None:
    # config's names as they are now: Hydra's plugin scan executes config.py again.
    settings = config.settings_from({"backend": "local", **node})
    with pytest.raises(config.LauncherConfigError, match="hydra.launcher") as raised:
        config.validate(settings)
    assert named in str(raised.value)


CONSOLE_APP = "hvpl-console-app"


def _with_console_app(venv: Path, with_plugin: bool) -> Path:
    """A fresh venv with tests/apps/console_app installed as a package (its console script in
    the venv's bin/, not on PATH); returns its Python."""
    python = fresh_venv(venv, with_plugin)
    app = shutil.copytree(APPS / "console_app", venv.parent / f"{venv.name}-app")
    pip_install(python, ["--no-deps", str(app)])
    return python


def _console_sweep(python: Path, cwd: Path, sweep: Path, *launcher: str) -> Path:
    """The app started by its console script, as its users start it."""
    command = [str(python.parent / CONSOLE_APP), "-m", "+x=1,2", COMMAND, *launcher]
    proc = subprocess.run(
        [*command, f"hydra.sweep.dir={sweep}"], cwd=cwd, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr
    return sweep


def _ran_as_console_script(sweep: Path, python: Path) -> None:
    """Each job ran through the console script of python's venv and returned its value."""
    for num, x in ((0, 1), (1, 2)):
        assert read_json(sweep / str(num) / "vertex_status.json")["state"] == "SUCCEEDED"
        started = read_json(sweep / str(num) / "started.json")
        assert started["x"] == x and Path(started["argv0"]).name == CONSOLE_APP
        assert Path(started["package"]).is_relative_to(python.parents[1])
        assert load_value(kept_result(sweep, sweep / str(num))) == x * 10


def test_an_app_started_by_its_console_script_runs_the_same_way_locally(tmp_path: Path) -> None:
    python = _with_console_app(tmp_path / "venv", with_plugin=True)
    sweep = _console_sweep(python, tmp_path, tmp_path / "m", LOCAL)
    _ran_as_console_script(sweep, python)


def test_an_app_started_by_its_console_script_runs_its_script_in_the_image(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    laptop = _with_console_app(tmp_path / "laptop", with_plugin=True)
    # The image: the plugin and the app installed as regular packages, in their own venv.
    image = _with_console_app(tmp_path / "image", with_plugin=False)
    pip_install(image, ["--no-deps", str(copy_package(tmp_path / "plugin"))])
    fake_vertex.python = str(image)
    vertex = ["hydra/launcher=vertex_pipeline", *vertex_overrides(fake_vertex, gcs_bucket)]
    sweep = _console_sweep(laptop, tmp_path, tmp_path / "m", *vertex)
    _ran_as_console_script(sweep, image)
