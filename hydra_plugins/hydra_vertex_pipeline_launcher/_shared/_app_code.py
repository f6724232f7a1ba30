"""The app's own code, shipped with a run: the format, and the step's side.

The launcher zips the Python files of the app's own folders on its `sys.path` (the script's
folder, the launch dir when it is on the path, PYTHONPATH entries), once per run, and stages
the archive next to shared.pkl; its digest travels inside shared.pkl, which the step checks
first. A folder inside the launch dir goes to the same place below the step's working dir
(which stands for the launch dir); one outside it goes to a folder of its own. Each is put on
the step's `sys.path` first, in the launcher's order.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import List, Optional, Tuple

from ._layout import APP_CODE
from ._storage import Storage

# Archive names: below the launch dir, or below the n-th folder outside it.
IN_LAUNCH_DIR = "launch"
OUTSIDE = "outside"


class AppCodeMismatch(RuntimeError):
    pass


@dataclass(frozen=True)
class AppCode:
    """What shared.pkl says of the shipped code: its digest, size, and the folders to put on
    the step's sys.path, as archive prefixes (`launch/<rel>` or `outside/<n>`)."""

    digest: str
    files: int
    size: int
    path_entries: Tuple[str, ...]
    # The app's main script in the archive, when it was shipped.
    main_script: Optional[str] = None


def archive_name(prefix: str, relative: str) -> str:
    return str(PurePosixPath(prefix, relative)) if relative not in ("", ".") else prefix


def unpack(storage: Storage, code: AppCode) -> Optional[Path]:
    """Fetches and checks the shipped code, puts it in place and its folders first on sys.path;
    where the app's main script is now, when it was shipped."""
    data = storage.read(APP_CODE)
    if data is None:
        raise FileNotFoundError(f"{storage.uri(APP_CODE)} is missing")
    actual = hashlib.sha256(data).hexdigest()
    if actual != code.digest:
        raise AppCodeMismatch(
            f"{storage.uri(APP_CODE)} has digest {actual}, the launcher staged {code.digest}: "
            "refusing it"
        )
    outside = Path(tempfile.mkdtemp(prefix="hydra-app-code-"))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in archive.namelist():
            archive_file = archive.read(name)
            target = _place(name, outside)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive_file)
    entries: List[str] = [str(_place(entry, outside)) for entry in code.path_entries]
    sys.path[:0] = [entry for entry in entries if entry not in sys.path]
    return _place(code.main_script, outside) if code.main_script else None


def _place(name: str, outside: Path) -> Path:
    """Where an archive name lands in the step; names that would leave their folder are refused."""
    parts = PurePosixPath(name).parts
    if not parts or ".." in parts or PurePosixPath(name).is_absolute():
        raise AppCodeMismatch(f"refusing the shipped file name {name!r}")
    if parts[0] == IN_LAUNCH_DIR:
        return Path(os.getcwd(), *parts[1:])
    if parts[0] == OUTSIDE:
        return outside.joinpath(*parts[1:])
    raise AppCodeMismatch(f"refusing the shipped file name {name!r}")
