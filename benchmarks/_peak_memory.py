"""Runs a Hydra app as `python APP ...` does, then records this process's own peak memory.

Usage: python benchmarks/_peak_memory.py RECORD.json APP [app arguments ...]

Writes to RECORD.json the process's peak resident set size once the app has returned, for
this process alone (the local backend's steps are other processes, not counted): Linux's VmHWM
of this program's own memory. Not getrusage's ru_maxrss, which Linux carries over from the
process that started this one (its benchmark runner, hundreds of MiB) across fork and exec.
"""

from __future__ import annotations

import json
import resource
import runpy
import sys
from pathlib import Path


def main() -> None:
    record_path, app = Path(sys.argv[1]), sys.argv[2]
    sys.argv = [app, *sys.argv[3:]]
    sys.path.insert(0, str(Path(app).parent))
    runpy.run_path(app, run_name="__main__")
    record_path.write_text(json.dumps({"peak_bytes": _peak_bytes()}))


def _peak_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    # Elsewhere ru_maxrss (macOS counts this process alone): Linux reports kilobytes, macOS bytes.
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


if __name__ == "__main__":
    main()
