"""Local steps: cold vs warm starts, and `vertex_pipeline_local` vs Hydra's joblib launcher.

Two comparisons, each measured in this one run (medians of `repeats` runs):

- steps: 200 trivial steps, `python -m hydra_plugins.hydra_vertex_pipeline_launcher._step._entry
  --help` (it imports everything a step imports, then exits), one per CPU at a time, started
  as the local backend starts them: a fresh interpreter each (cold) vs forked from the
  preloaded warm-start server (warm).
- end to end: a trivial app, 200 jobs, `hydra/launcher=vertex_pipeline_local` vs
  `hydra/launcher=joblib` (n_jobs = CPUs), from the command to its exit (target 3: <= 1.0).

Needs hydra-joblib-launcher (`pip install hydra-joblib-launcher`).
Run: python benchmarks/local_steps.py [--jobs 200] [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Dict, List

from hydra_plugins.hydra_vertex_pipeline_launcher._backends._local import _own_process_group
from hydra_plugins.hydra_vertex_pipeline_launcher._backends._warm import WarmStarter

STEP = [sys.executable, "-m", "hydra_plugins.hydra_vertex_pipeline_launcher._step._entry", "--help"]
APP = textwrap.dedent(
    """
    import hydra

    @hydra.main(version_base=None, config_path=None)
    def main(cfg):
        return cfg.x * 2

    if __name__ == "__main__":
        main()
    """
)


def measure(jobs: int = 200, repeats: int = 1) -> Dict[str, float]:
    """Seconds (medians) and their ratios; ratio keys end in `_ratio`."""
    cpus = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        cold = _median(repeats, lambda: _steps_seconds(workdir, jobs, cpus, warm=False))
        warm = _median(repeats, lambda: _steps_seconds(workdir, jobs, cpus, warm=True))
        (workdir / "app.py").write_text(APP)
        local = _median(repeats, lambda: _sweep_seconds(workdir, jobs, "vertex_pipeline_local"))
        n_jobs = f"hydra.launcher.n_jobs={cpus}"
        joblib = _median(repeats, lambda: _sweep_seconds(workdir, jobs, "joblib", n_jobs))
    return {
        "jobs": jobs,
        "cpus": cpus,
        "steps_cold_s": cold,
        "steps_warm_s": warm,
        "steps_warm_over_cold_ratio": warm / cold,
        "local_s": local,
        "joblib_s": joblib,
        "local_over_joblib_ratio": local / joblib,
    }


def _median(repeats: int, seconds: Callable[[], float]) -> float:
    return statistics.median(seconds() for _ in range(repeats))


def _steps_seconds(workdir: Path, jobs: int, parallel: int, warm: bool) -> float:
    """Wall time of `jobs` steps, `parallel` at a time, each appending to its own log."""
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    starter = WarmStarter()
    logs = workdir / ("warm" if warm else "cold")
    logs.mkdir(exist_ok=True)

    def run_step(num: int) -> int:
        console = logs / f"{num}.log"
        started = starter.start(STEP, workdir, env, console) if warm else None
        if started is not None:
            return started.wait()
        with console.open("ab") as out:
            return subprocess.Popen(
                STEP,
                cwd=workdir,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                **_own_process_group(),
            ).wait()

    began = time.perf_counter()
    try:
        with ThreadPoolExecutor(parallel) as pool:
            codes: List[int] = list(pool.map(run_step, range(jobs)))
    finally:
        starter.close()
    elapsed = time.perf_counter() - began
    if any(codes):
        raise RuntimeError(f"some steps failed: see {logs}")
    return elapsed


def _sweep_seconds(workdir: Path, jobs: int, launcher: str, *settings: str) -> float:
    sweep = workdir / f"multirun-{launcher}-{time.monotonic_ns()}"
    command = [
        sys.executable,
        "app.py",
        "-m",
        f"+x=range(0,{jobs})",
        f"hydra/launcher={launcher}",
        *settings,
        f"hydra.sweep.dir={sweep}",
    ]
    began = time.perf_counter()
    subprocess.run(command, cwd=workdir, check=True, capture_output=True)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    figures = measure(args.jobs, args.repeats)
    print(f"{figures['jobs']} trivial jobs, {figures['cpus']} CPUs, medians of {args.repeats}")
    print(f"steps, cold (fresh interpreter each):   {figures['steps_cold_s']:7.2f} s")
    print(f"steps, warm (forked, preloaded):        {figures['steps_warm_s']:7.2f} s")
    print(f"  warm / cold:                          {figures['steps_warm_over_cold_ratio']:7.2f}")
    print(f"vertex_pipeline_local, start to finish: {figures['local_s']:7.2f} s")
    print(f"joblib launcher (n_jobs=CPUs):          {figures['joblib_s']:7.2f} s")
    print(f"  local / joblib (target 3: <= 1.0):    {figures['local_over_joblib_ratio']:7.2f}")


if __name__ == "__main__":
    main()
