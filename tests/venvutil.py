"""Fresh virtualenvs that install things as a user does, made in seconds.

Such a venv installs nothing from an index: it reaches the packages of the environment running
the tests (Hydra, kfp, pip, ...) through a `.pth` file, and pip installs into it what a test
gives it. Without the plugin, it sees a view of those packages that leaves this plugin out
(whether it is installed there regularly, as in CI, or editable, as a developer has it): what
Hydra then finds of the plugin is what the test installed.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import List

import hydra_plugins.hydra_vertex_pipeline_launcher as plugin

# The plugin's own entries in a site-packages dir: its dist-info, editable install files.
PLUGIN_ENTRIES = ("hydra_vertex_pipeline_launcher", "__editable__")
PLUGIN_PACKAGE = "hydra_vertex_pipeline_launcher"


def fresh_venv(target: Path, with_plugin: bool) -> Path:
    """A virtualenv at target that reaches this environment's packages, the plugin only if
    with_plugin; returns its Python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(target)], check=True)
    python = target / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    entries = [str(_without_plugin(target / "laptop-site"))]
    if with_plugin:
        entries.append(str(Path(plugin.__file__).parents[2]))  # the dir holding hydra_plugins
    (site / "laptop.pth").write_text("\n".join(entries) + "\n")
    return python


def pip_install(python: Path, args: List[str]) -> None:
    """pip of this environment, installing into python's venv."""
    proc = subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", "install", "--quiet", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _without_plugin(view: Path) -> Path:
    """This environment's site-packages as symlinks, the plugin's entries left out."""
    site = Path(sysconfig.get_paths()["purelib"])
    view.mkdir(parents=True)
    for entry in site.iterdir():
        if entry.name.startswith(PLUGIN_ENTRIES):
            continue
        if entry.name == "hydra_plugins":
            (view / entry.name).mkdir()
            for child in entry.iterdir():
                if child.name != PLUGIN_PACKAGE:
                    (view / entry.name / child.name).symlink_to(child)
            continue
        (view / entry.name).symlink_to(entry)
    return view
