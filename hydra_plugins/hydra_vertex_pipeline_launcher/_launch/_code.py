"""The app's own code, gathered to travel with a run (the step's side: _shared/_app_code.py).

Its folders are those of the launcher's `sys.path` the app itself brings: the script's folder,
the launch dir when it is on the path (`python -m`), PYTHONPATH entries; of each, the Python
files, never what a step must not get or cannot use: Hydra's outputs, data, virtualenvs,
site-packages, hidden folders such as `.git`, caches.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import sys
import zipfile
from collections import Counter
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

from .._shared._app_code import IN_LAUNCH_DIR, OUTSIDE, AppCode, archive_name
from .._shared._app_main import MainScript
from ..config import LauncherConfigError

log = logging.getLogger(__name__)

MAX_BYTES = 50 * 2**20
MAX_FILES = 10_000
# Folders never shipped, by name; and any folder holding one of the marker files.
SKIPPED_FOLDERS = frozenset(
    {"__pycache__", "site-packages", "dist-packages", "node_modules", "outputs", "multirun", "data"}
)
SKIPPED_MARKERS = ("pyvenv.cfg", ".hydra", "multirun.yaml")


class AppCodeTooLarge(LauncherConfigError):
    """The app's folders hold more Python than a run should carry; raised before uploading."""


def gather(launch_dir: Path, main: Optional[MainScript]) -> Optional[Tuple[AppCode, bytes]]:
    """The app's code as shared.pkl describes it, and its archive; None when there is none."""
    files: Dict[str, Path] = {}
    entries: List[str] = []
    main_script = None
    main_file = _main_file(launch_dir, main)
    folders = _app_folders()
    for index, folder in enumerate(folders):
        prefix = _prefix(folder, launch_dir, index)
        entries.append(prefix)
        for path in _python_files(folder):
            name = archive_name(prefix, path.relative_to(folder).as_posix())
            files.setdefault(name, path)
            if main_file is not None and path == main_file:
                main_script = name
            if len(files) > MAX_FILES:
                _check_size(files)  # no need to walk the rest of a tree that is too large
    if not files:
        return None
    _check_size(files)
    archive = _zip(files)
    code = AppCode(
        digest=hashlib.sha256(archive).hexdigest(),
        files=len(files),
        size=sum(path.stat().st_size for path in files.values()),
        path_entries=tuple(entries),
        main_script=main_script,
    )
    log.info(
        f"Shipping the app's code with the run: {code.files} Python files, {_size(code.size)} "
        f"from {', '.join(map(str, folders))} (hydra.launcher.ship_code=false: the image's only)"
    )
    return code, archive


def _app_folders() -> List[Path]:
    """The launcher's sys.path entries that are the app's: in sys.path order, once each."""
    own = {_real(entry) for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry}
    own |= {_real(entry) for entry in sys.path[:1]}  # the script's folder, or the launch dir
    folders: List[Path] = []
    for entry in sys.path:
        folder = _real(entry)
        if folder in own and folder.is_dir() and folder not in folders and _app_folder(folder):
            folders.append(folder)
    return folders


def _app_folder(folder: Path) -> bool:
    """Not Python's own install or a virtualenv's (PYTHONPATH may name those too)."""
    installs = {_real(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    return not any(folder == p or p in folder.parents for p in installs) and not any(
        part in SKIPPED_FOLDERS for part in folder.parts
    )


def _python_files(folder: Path) -> Iterator[Path]:
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if _walk_into(Path(root, d)))
        for name in sorted(names):
            if name.endswith(".py"):
                yield Path(root, name)


def _walk_into(folder: Path) -> bool:
    if folder.name.startswith(".") or folder.name in SKIPPED_FOLDERS or folder.is_symlink():
        return False
    return not any((folder / marker).exists() for marker in SKIPPED_MARKERS)


def _prefix(folder: Path, launch_dir: Path, index: int) -> str:
    if folder == launch_dir or launch_dir in folder.parents:
        return archive_name(IN_LAUNCH_DIR, folder.relative_to(launch_dir).as_posix())
    return archive_name(OUTSIDE, str(index))


def _main_file(launch_dir: Path, main: Optional[MainScript]) -> Optional[Path]:
    if main is None or main.path is None:
        return None
    return _real(str(launch_dir / main.path))


def _check_size(files: Dict[str, Path]) -> None:
    sizes = {name: path.stat().st_size for name, path in files.items()}
    total = sum(sizes.values())
    if total <= MAX_BYTES and len(sizes) <= MAX_FILES:
        return
    by_folder: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    for name, size in sizes.items():
        by_folder[str(files[name].parent)] += size
        counts[str(files[name].parent)] += 1
    ranked = by_folder if total > MAX_BYTES else counts
    largest = ", ".join(
        f"{folder} ({counts[folder]} files, {_size(by_folder[folder])})"
        for folder, _ in ranked.most_common(5)
    )
    raise AppCodeTooLarge(
        f"The app's own code is too large to ship with the run: {len(sizes)} Python files "
        f"or more, {_size(total)} (at most {MAX_FILES} files, {_size(MAX_BYTES)}). Largest "
        f"folders: {largest}. Launch from the app's own folder, narrow PYTHONPATH, or set "
        "hydra.launcher.ship_code=false to run the code baked into the image. Nothing was "
        "uploaded."
    )


def _zip(files: Dict[str, Path]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, path in sorted(files.items()):
            archive.write(path, name)
    return buffer.getvalue()


def _real(entry: str) -> Path:
    return Path(os.path.realpath(entry or os.getcwd()))


def _size(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.1f} KiB"
