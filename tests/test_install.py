"""The installs a user makes: `pip install -e .` of a checkout, and a regular one, each found by
Hydra's plugin scan."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

from apputil import read_json
from image_env import REPO, copy_package
from venvutil import fresh_venv, pip_install

EXAMPLE = REPO / "example_app" / "train.py"
PLUGIN_DIR = "hydra_plugins/hydra_vertex_pipeline_launcher/"


def _example_sweep(python: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The example app's sweep on the local backend, run with python."""
    args = ["-m", "lr=0.1,0.3", "hydra/launcher=vertex_pipeline_local", "hydra.sweep.dir=m"]
    return subprocess.run(
        [str(python), str(EXAMPLE), *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_a_plain_editable_install_is_found_by_hydras_plugin_scan(tmp_path: Path) -> None:
    checkout = copy_package(tmp_path / "checkout")
    python = fresh_venv(tmp_path / "venv", with_plugin=False)
    before = _example_sweep(python, tmp_path)
    assert "Could not find 'hydra/launcher/vertex_pipeline_local'" in before.stderr, before.stderr

    # As a user types it: setuptools' default editable mode, built in isolation.
    pip_install(python, ["--no-deps", "-e", str(checkout)])
    found = subprocess.run(
        [str(python), "-c", "import hydra_plugins.hydra_vertex_pipeline_launcher as p; "
         "print(p.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert Path(found.strip()).is_relative_to(checkout)
    after = _example_sweep(python, tmp_path)
    assert after.returncode == 0, after.stderr
    for num in ("0", "1"):
        assert read_json(tmp_path / "m" / num / "vertex_status.json")["state"] == "SUCCEEDED"


def test_a_regular_install_holds_exactly_the_package_and_is_found(tmp_path: Path) -> None:
    checkout = copy_package(tmp_path / "checkout")
    wheels = tmp_path / "wheels"
    proc = subprocess.run(
        [str(fresh_venv(tmp_path / "build-venv", with_plugin=False)), "-m", "pip", "wheel",
         "--quiet", "--no-deps", "-w", str(wheels), str(checkout)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (wheel,) = wheels.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    dist_info = [n for n in names if n.split("/")[0].endswith(".dist-info")]
    assert sorted(set(names) - set(dist_info)) == sorted(
        f"{PLUGIN_DIR}{path.relative_to(checkout / PLUGIN_DIR).as_posix()}"
        for path in (checkout / PLUGIN_DIR).rglob("*.py")
    )

    python = fresh_venv(tmp_path / "venv", with_plugin=False)
    pip_install(python, ["--no-deps", str(wheel)])
    proc = _example_sweep(python, tmp_path)
    assert proc.returncode == 0, proc.stderr
