"""Files a job wrote in the container's working dir, outside its output dir: named, since only
the output dir comes back (with `hydra.job.chdir=false`, Hydra's default, `open("x.json", "w")`
writes there)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple

# A working dir with more entries than this is not watched: listing it would cost the job.
MAX_WATCHED = 20_000
NAMED = 10

Snapshot = Dict[str, Tuple[int, int]]


def snapshot(working_dir: Path, output_dir: Path) -> Optional[Snapshot]:
    """Each file below working_dir but outside output_dir: (mtime, size); None if too many."""
    files: Snapshot = {}
    for root, dirs, names in os.walk(working_dir):
        dirs[:] = [d for d in dirs if Path(root, d) != output_dir]
        for name in names:
            path = os.path.join(root, name)
            try:
                status = os.stat(path)
            except OSError:
                continue
            files[os.path.relpath(path, working_dir)] = (status.st_mtime_ns, status.st_size)
            if len(files) > MAX_WATCHED:
                return None
    return files


def stray_warning(before: Optional[Snapshot], working_dir: Path, output_dir: Path) -> str:
    """What to say of the files the job wrote since `before`; "" if none."""
    if before is None:
        return ""
    after = snapshot(working_dir, output_dir) or {}
    written: List[str] = sorted(name for name, seen in after.items() if before.get(name) != seen)
    if not written:
        return ""
    named = ", ".join(written[:NAMED]) + (
        f" and {len(written) - NAMED} more" if len(written) > NAMED else ""
    )
    return (
        f"this job wrote {len(written)} file(s) in the container's working dir ({working_dir}), "
        f"outside its output dir: {named}. They stay in the container and are lost when the "
        "step ends: write them into the job's output dir "
        "(hydra.core.hydra_config.HydraConfig.get().runtime.output_dir) to get them back."
    )
