"""The Vertex path with steps in an image-like environment: the plugin and the app's
dependencies only (tests/image_env.py), in a working dir holding only what the image holds."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import List

from image_env import REPO, dockerfile_workdir

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
