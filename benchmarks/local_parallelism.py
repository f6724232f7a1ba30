"""4 jobs that each sleep 2 s, on the local backend: serial (max_parallel=1) vs max_parallel=4.

Prints both wall times and their ratio, measured in this one run. The target: the parallel
sweep finishes well under 8 s, i.e. close to one job's time plus the launcher's overhead.
Run: python benchmarks/local_parallelism.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

APP = Path(__file__).parents[1] / "tests" / "apps" / "rendezvous.py"
JOBS = "+x=0,1,2,3"


def sweep_seconds(max_parallel: int, workdir: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            str(APP),
            "-m",
            JOBS,
            "+sleep=2",
            f"+board={workdir / 'board'}",
            "hydra/launcher=vertex_pipeline_local",
            f"hydra.launcher.local.max_parallel={max_parallel}",
            f"hydra.sweep.dir={workdir / 'multirun'}",
        ],
        cwd=workdir,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def main() -> None:
    with tempfile.TemporaryDirectory() as serial_dir, tempfile.TemporaryDirectory() as par_dir:
        serial = sweep_seconds(1, Path(serial_dir))
        parallel = sweep_seconds(4, Path(par_dir))
    print(f"serial (max_parallel=1):   {serial:6.2f} s")
    print(f"parallel (max_parallel=4): {parallel:6.2f} s")
    print(f"speed-up: {serial / parallel:4.2f}x; parallel under 8 s: {parallel < 8}")


if __name__ == "__main__":
    main()
