"""An environment that stands for a step's image, for the fake Vertex to run steps in.

A real step runs in an image built elsewhere: its Python holds this plugin (a regular install,
not the checkout) and the app's dependencies, nothing else the launching environment has (no
test extra, no Optuna sweeper); its working dir holds only what the image's Dockerfile put
there. `image_python` makes such a virtualenv once and keeps it across test sessions, under
`$HVPL_TEST_CACHE` (default `~/.cache/hydra-vertex-pipeline-launcher-tests`): the dependencies
are installed again only when the requirement set changes, the plugin itself whenever its
source does. `image_workdir` lays out what a Dockerfile copies into its working dir.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Sequence

REPO = Path(__file__).resolve().parents[1]
# The app's own dependencies beyond the plugin's: the test apps and the example app use only
# what the plugin brings (Hydra, OmegaConf).
APP_REQUIREMENTS: List[str] = []
# What a plain `pip install <checkout>` reads.
PACKAGE_FILES = ("setup.py", "pyproject.toml", "README.md")
PLUGIN_SOURCE = "hydra_plugins"
PIP = ("-m", "pip", "--disable-pip-version-check", "--quiet", "install")


def cache_root() -> Path:
    default = Path.home() / ".cache" / "hydra-vertex-pipeline-launcher-tests"
    return Path(os.environ.get("HVPL_TEST_CACHE", default))


def image_python(requirements: Sequence[str] = APP_REQUIREMENTS) -> Path:
    """The interpreter of an image-like virtualenv: the plugin as installed from this checkout,
    and `requirements`; made (or brought up to date) under a lock, so sessions can share it."""
    python_version = f"{sys.version_info.major}.{sys.version_info.minor}"
    requirement_key = _digest([python_version, (REPO / "setup.py").read_bytes(), *requirements])
    venv = cache_root() / f"image-py{python_version}-{requirement_key[:16]}"
    with _locked(venv.with_suffix(".lock")):
        if not (venv / "dependencies-installed").exists():
            _make_venv(venv, requirements)
        _install_plugin(venv)
    return _python_of(venv)


def dockerfile_workdir(dockerfile: Path, context: Path, target: Path) -> Path:
    """What `dockerfile` (built from `context`) puts in its WORKDIR, laid out in `target`:
    each `COPY src dest` whose dest is inside the last WORKDIR."""
    workdir = "/"
    copies = []
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if words[:1] == ["WORKDIR"]:
            workdir = words[1]
        elif words[:1] == ["COPY"] and len(words) == 3:
            copies.append((words[1], words[2]))
    target.mkdir(parents=True, exist_ok=True)
    for source, dest in copies:
        inside = os.path.relpath(dest, workdir)
        if inside.startswith(".."):
            continue
        shutil.copytree(context / source, target / inside, ignore=_ignored, dirs_exist_ok=True)
    return target


def _make_venv(venv: Path, requirements: Sequence[str]) -> None:
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    with _package_copy() as package:
        _pip(venv, [str(package), *requirements])
    (venv / "dependencies-installed").write_text("\n".join(requirements))


def _install_plugin(venv: Path) -> None:
    """Installs the plugin again (no dependencies) when its source changed since the last."""
    source_digest = _plugin_digest()
    marker = venv / "plugin-digest"
    if marker.exists() and marker.read_text() == source_digest:
        return
    with _package_copy() as package:
        _pip(venv, ["--no-deps", "--force-reinstall", str(package)])
    marker.write_text(source_digest)


def _pip(venv: Path, args: List[str]) -> None:
    proc = subprocess.run(
        [str(_python_of(venv)), *PIP, *args], capture_output=True, text=True, timeout=900
    )
    if proc.returncode != 0:
        raise RuntimeError(f"making the image-like env {venv} failed:\n{proc.stderr[-4000:]}")


@contextmanager
def _package_copy() -> Iterator[Path]:
    """The checkout's package, copied: a build in the checkout would leave build/ behind."""
    with tempfile.TemporaryDirectory(prefix="hvpl-package-") as tmp:
        yield copy_package(Path(tmp) / "package")


def copy_package(package: Path) -> Path:
    """What a plain `pip install <checkout>` reads of the checkout, copied to package."""
    shutil.copytree(REPO / PLUGIN_SOURCE, package / PLUGIN_SOURCE, ignore=_ignored)
    for name in PACKAGE_FILES:
        shutil.copy2(REPO / name, package / name)
    return package


def _plugin_digest() -> str:
    files = sorted(p for p in (REPO / PLUGIN_SOURCE).rglob("*") if p.is_file() and _shipped(p))
    parts: List[object] = []
    for path in [*files, *(REPO / name for name in PACKAGE_FILES)]:
        parts += [str(path.relative_to(REPO)), path.read_bytes()]
    return _digest(parts)


def _shipped(path: Path) -> bool:
    return "__pycache__" not in path.parts and not path.name.endswith(".pyc")


_ignored = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")


def _digest(parts: Sequence[object]) -> str:
    sha = hashlib.sha256()
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode()
        sha.update(len(data).to_bytes(8, "big") + data)
    return sha.hexdigest()


def _python_of(venv: Path) -> Path:
    return venv / "bin" / "python"


@contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
