"""The Vertex path with steps in an image-like environment: the plugin and the app's
dependencies only (tests/image_env.py), in a working dir holding only what the image holds."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import List

import pytest
import yaml
from apputil import APPS, read_json
from fake_vertex import FakeVertex
from google.cloud import storage
from image_env import REPO, dockerfile_workdir
from vertexutil import only_job, sweep_args

EXAMPLE_APP = REPO / "example_app"


def _launch_dir(tmp_path: Path) -> Path:
    """A launch dir holding the example app, as the repository root holds it."""
    launch = tmp_path / "launch"
    shutil.copytree(EXAMPLE_APP, launch / "example_app", ignore=shutil.ignore_patterns("__py*"))
    return launch


def _run_example(launch: Path, args: List[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [shutil.which("python") or "python", "example_app/train.py", *args],
        cwd=launch,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_image_holds_the_plugin_and_not_what_only_the_launcher_has(
    image_python: Path, tmp_path: Path
) -> None:
    where = subprocess.run(
        [str(image_python), "-c", "import hydra_plugins.hydra_vertex_pipeline_launcher as p;"
         "print(p.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "site-packages" in where and str(REPO) not in where
    for launcher_only in ("hydra_plugins.hydra_optuna_sweeper", "optuna", "pytest"):
        missing = subprocess.run([str(image_python), "-c", f"import {launcher_only}"], cwd=tmp_path)
        assert missing.returncode != 0, launcher_only


def test_the_image_workdir_holds_what_the_example_dockerfile_copies_there(tmp_path: Path) -> None:
    workdir = dockerfile_workdir(EXAMPLE_APP / "Dockerfile", REPO, tmp_path / "app")
    shipped = sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*") if p.is_file())
    expected = sorted(
        str(Path("example_app") / p.relative_to(EXAMPLE_APP))
        for p in EXAMPLE_APP.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    assert shipped == expected


@pytest.mark.parametrize(
    ("execution", "image_workdir"),
    [("payload", "empty"), ("payload", "dockerfile"), ("command", "dockerfile")],
    indirect=["image_workdir"],
)
def test_a_sweep_of_the_example_runs_in_the_image(
    image_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path, execution: str
) -> None:
    """Command mode runs the app as baked into the image: only an image that holds it."""
    launch = _launch_dir(tmp_path)
    sweep = launch / "multirun"
    overrides = [f"hydra.launcher.execution={execution}", "lr=0.1,0.3"]
    proc = _run_example(launch, sweep_args(image_vertex, gcs_bucket, sweep, *overrides))
    assert proc.returncode == 0, proc.stderr
    for num in ("0", "1"):
        assert read_json(sweep / num / "vertex_status.json")["state"] == "SUCCEEDED"
        assert "val_loss" in read_json(sweep / num / "model.json")


def test_the_readmes_optuna_example_runs_in_an_image_without_the_optuna_sweeper(
    image_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    launch = _launch_dir(tmp_path)
    sweep = launch / "multirun"
    args = sweep_args(image_vertex, gcs_bucket, sweep)
    proc = _run_example(launch, ["--config-name", "optuna", *args])
    assert proc.returncode == 0, proc.stderr
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["best_value"] < 0.05
    assert len(list(sweep.glob("*/model.json"))) == 12


def _app_launch_dir(tmp_path: Path) -> Path:
    """A launch dir holding tests/apps/in_image, none of which the image holds."""
    launch = tmp_path / "launch"
    shutil.copytree(APPS / "in_image", launch, ignore=shutil.ignore_patterns("__py*"))
    return launch


def _run_in_image_app(
    fake: FakeVertex, bucket: str, launch: Path, *overrides: str
) -> subprocess.CompletedProcess[str]:
    args = _in_image_args(fake, bucket, launch, *overrides)
    return subprocess.run(
        [shutil.which("python") or "python", "app.py", *args],
        cwd=launch, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _in_image_args(fake: FakeVertex, bucket: str, launch: Path, *overrides: str) -> List[str]:
    return sweep_args(fake, bucket, launch / "multirun", "x=1,2", *overrides)


def test_the_apps_own_configstore_entries_reach_its_jobs(
    image_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    launch = _app_launch_dir(tmp_path)
    proc = _run_in_image_app(image_vertex, gcs_bucket, launch)
    assert proc.returncode == 0, proc.stderr
    for num in ("0", "1"):
        assert read_json(launch / "multirun" / num / "seen.json")["app_config_stored"]


def test_an_app_with_a_helper_module_runs_in_an_image_without_its_code(
    image_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    launch = _app_launch_dir(tmp_path)
    overrides = ["pickle_model=true", "reexec=true"]
    proc = _run_in_image_app(image_vertex, gcs_bucket, launch, *overrides)
    assert proc.returncode == 0, proc.stderr
    assert "Shipping the app's code with the run: 2 Python files" in proc.stdout + proc.stderr
    launched = ["app.py", *_in_image_args(image_vertex, gcs_bucket, launch, *overrides)]
    for num, x in (("0", 1), ("1", 2)):
        job_dir = launch / "multirun" / num
        seen = read_json(job_dir / "seen.json")
        assert seen["double"] == 2 * x
        assert seen["argv"] == launched
        assert seen["copy_exit"] == 0
        assert b"__main__" in (job_dir / "model.pkl").read_bytes()
    load = (
        "import __main__, pickle, sys; from app import Model; __main__.Model = Model; "
        "print(pickle.loads(open(sys.argv[1], 'rb').read()).size)"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", load, "multirun/1/model.pkl"], cwd=launch, capture_output=True,
        text=True,
    )  # fmt: skip
    assert loaded.stdout.strip() == "2", loaded.stderr


def test_without_shipped_code_the_image_is_the_only_source_of_code(
    image_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    launch = _app_launch_dir(tmp_path)
    proc = _run_in_image_app(image_vertex, gcs_bucket, launch, "hydra.launcher.ship_code=false")
    assert proc.returncode != 0
    assert "No module named 'helpers'" in proc.stderr
    assert "Shipping the app's code" not in proc.stdout + proc.stderr


def test_outputs_data_virtualenvs_and_git_are_never_shipped(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    launch = _app_launch_dir(tmp_path)
    for never in (".git/hooks/x.py", "data/y.py", "venv/lib/z.py", "outputs/d/t/w.py"):
        (launch / never).parent.mkdir(parents=True, exist_ok=True)
        (launch / never).write_text("raise RuntimeError('shipped')\n")
    (launch / "venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (launch / "pkg").mkdir()
    (launch / "pkg" / "__init__.py").write_text("")
    proc = _run_in_image_app(fake_vertex, gcs_bucket, launch)
    assert proc.returncode == 0, proc.stderr
    (code,) = [b for b in storage.Client().list_blobs(gcs_bucket) if b.name.endswith("code.zip")]
    with zipfile.ZipFile(io.BytesIO(code.download_as_bytes())) as archive:
        shipped = sorted(archive.namelist())
    assert shipped == ["launch/app.py", "launch/helpers.py", "launch/pkg/__init__.py"]


def test_a_tree_too_large_to_ship_stops_the_launch_naming_what_made_it_large(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    launch = _app_launch_dir(tmp_path)
    (launch / "generated").mkdir()
    with open(launch / "generated" / "tables.py", "w") as f:
        f.truncate(51 * 2**20)
    proc = _run_in_image_app(fake_vertex, gcs_bucket, launch)
    assert proc.returncode != 0
    assert "too large to ship" in proc.stderr
    assert f"{launch / 'generated'} (1 files, 51.0 MiB)" in proc.stderr
    assert "hydra.launcher.ship_code=false" in proc.stderr
    assert not fake_vertex.jobs
    assert list(storage.Client().list_blobs(gcs_bucket)) == []


def test_shipped_code_that_differs_from_what_was_staged_is_refused(
    image_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    launch = _app_launch_dir(tmp_path)
    image_vertex.hold_tasks()
    launcher = subprocess.Popen(
        [sys.executable, "app.py", *_in_image_args(image_vertex, gcs_bucket, launch)],
        cwd=launch, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        only_job(image_vertex)
        (code,) = [b for b in storage.Client().list_blobs(gcs_bucket) if b.name.endswith(".zip")]
        code.upload_from_string(b"PK\x05\x06" + bytes(18))  # an empty zip, not the app's
        image_vertex.release_tasks()
        output, _ = launcher.communicate(timeout=120)
    finally:
        launcher.kill()
    assert launcher.returncode != 0
    assert "code.zip has digest" in output and "refusing it" in output
    assert not (launch / "multirun" / "0" / "seen.json").exists()


def test_files_a_job_leaves_in_the_container_are_named_in_its_log_and_the_terminal(
    image_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    launch = _app_launch_dir(tmp_path)
    proc = _run_in_image_app(image_vertex, gcs_bucket, launch, "stray=true")
    assert proc.returncode == 0, proc.stderr
    for num, x in (("0", 1), ("1", 2)):
        said = "wrote 1 file(s) in the container's working dir"
        job_log = (launch / "multirun" / num / "app.log").read_text()
        assert said in job_log and f"outside its output dir: score-{x}.json." in job_log
        assert f"job #{num}: this job {said}" in proc.stdout + proc.stderr
    assert "HydraConfig.get().runtime.output_dir" in job_log


def test_on_the_local_backend_files_outside_the_output_dir_land_in_the_launch_dir(
    tmp_path: Path,
) -> None:
    launch = _app_launch_dir(tmp_path)
    args = ["-m", "x=1,2", "stray=true", "hydra/launcher=vertex_pipeline_local"]
    proc = subprocess.run(
        [sys.executable, "app.py", *args], cwd=launch, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert read_json(launch / "score-2.json") == {"x": 2}
    assert "container" not in proc.stdout + proc.stderr


def test_in_command_mode_too_files_left_in_the_container_are_named(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    launch = _app_launch_dir(tmp_path)
    image = tmp_path / "image"  # command mode runs the app as baked into the image
    shutil.copytree(launch, image)
    fake_vertex.image_dir = image
    proc = _run_in_image_app(
        fake_vertex, gcs_bucket, launch, "stray=true", "hydra.launcher.execution=command"
    )
    assert proc.returncode == 0, proc.stderr
    for num, x in (("0", 1), ("1", 2)):
        said = "wrote 1 file(s) in the container's working dir"
        job_log = (launch / "multirun" / num / "app.log").read_text()
        assert said in job_log and f"outside its output dir: score-{x}.json." in job_log, (
            proc.stdout + proc.stderr
        )
        assert f"job #{num}: this job {said}" in proc.stdout + proc.stderr
