"""Build + compile of one sweep's pipeline at 300, 3000 and 10 000 jobs, measured in one run.

Times `_build.build_pipeline` alone (kfp defining and compiling the pipeline, writing its
spec), for trivial jobs that each have their own overrides and display name, and prints the
3000 ÷ 300 ratio (target: ≤ 11, i.e. about linear) and the 10 000-job seconds (target: ≤ 10 s).
Each figure is the median of several runs, wall and CPU seconds. Also prints each spec's size.
Run: python benchmarks/build_scale.py [--custom-job] [--max-parallel N] [JOBS ...]
`measure(job_counts)` returns the same figures for the overall benchmarks command.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from omegaconf import OmegaConf

from hydra_plugins.hydra_vertex_pipeline_launcher._launch._compose import ComposedJob, display_name
from hydra_plugins.hydra_vertex_pipeline_launcher._launch._stage import StagedRun
from hydra_plugins.hydra_vertex_pipeline_launcher.config import (
    VertexPipelineLauncherConf,
    settings_from,
)

DEFAULT_JOB_COUNTS = (300, 3000, 10_000)
# Each count is built at least MIN_REPEATS times; short builds up to MAX_REPEATS times.
MIN_REPEATS = 3
REPEAT_BELOW_SECONDS = 2.0
MAX_REPEATS = 5


def _jobs(count: int) -> List[ComposedJob]:
    config = OmegaConf.create({"hydra": {"job": {"name": "bench"}}})
    jobs = []
    for num in range(count):
        overrides = [f"lr={0.001 * (num % 97)}", f"seed={num}"]
        jobs.append(
            ComposedJob(
                num=num,
                overrides=overrides,
                sweep_config=config,
                local_dir=Path(f"/tmp/bench/{num}"),
                display_name=display_name(num, overrides),
            )
        )
    return jobs


def _settings(custom_job: bool, max_parallel: Optional[int]) -> VertexPipelineLauncherConf:
    launcher = {"image": "us-docker.pkg.dev/p/r/train:1", "max_parallel": max_parallel}
    if custom_job:
        launcher["machine_type"] = "n1-highmem-8"
    return settings_from(launcher)


def build_once(
    count: int, workdir: Path, custom_job: bool = False, max_parallel: Optional[int] = None
) -> Dict[str, float]:
    """Wall and CPU seconds to build and compile a `count`-job sweep; the spec's bytes."""
    from hydra_plugins.hydra_vertex_pipeline_launcher._launch._build import build_pipeline

    settings = _settings(custom_job, max_parallel)
    jobs = _jobs(count)
    staged = StagedRun(
        shared_digest="0" * 64,
        job_digests={job.num: f"{job.num:064x}" for job in jobs},
        blobs={},
    )
    spec_path = workdir / f"pipeline-{count}.yaml"
    started, cpu_started = time.perf_counter(), time.process_time()
    task_jobs = build_pipeline(
        settings,
        "bench",
        "gs://bucket/hydra/bench-run",
        jobs,
        staged,
        spec_path,
        {job.num: settings for job in jobs},
    )
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    assert sorted(task_jobs.values()) == list(range(count))
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "spec_bytes": float(spec_path.stat().st_size),
    }


def _median_build(
    count: int, workdir: Path, custom_job: bool, max_parallel: Optional[int]
) -> Dict[str, float]:
    runs = [build_once(count, workdir, custom_job, max_parallel) for _ in range(MIN_REPEATS)]
    while runs[0]["seconds"] < REPEAT_BELOW_SECONDS and len(runs) < MAX_REPEATS:
        runs.append(build_once(count, workdir, custom_job, max_parallel))
    return {
        "seconds": statistics.median(run["seconds"] for run in runs),
        "cpu_seconds": statistics.median(run["cpu_seconds"] for run in runs),
        "spec_bytes": runs[0]["spec_bytes"],
        "runs": float(len(runs)),
    }


def measure(
    job_counts: Sequence[int] = DEFAULT_JOB_COUNTS,
    custom_job: bool = False,
    max_parallel: Optional[int] = None,
) -> dict:
    """{"builds": {jobs: {"seconds", "cpu_seconds", "spec_bytes", "runs"}},
    "ratio_3000_300": wall seconds 3000 ÷ 300 (None without both), "cpu_ratio_3000_300"}.

    Medians; one warm-up build first, so that no count pays kfp's import. CPU seconds are
    this process's: on a shared machine they show what the wall seconds would be alone.
    """
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        build_once(10, workdir, custom_job, max_parallel)
        builds = {
            count: _median_build(count, workdir, custom_job, max_parallel) for count in job_counts
        }
    result: dict = {"builds": builds, "ratio_3000_300": None, "cpu_ratio_3000_300": None}
    if 300 in builds and 3000 in builds:
        result["ratio_3000_300"] = builds[3000]["seconds"] / builds[300]["seconds"]
        result["cpu_ratio_3000_300"] = builds[3000]["cpu_seconds"] / builds[300]["cpu_seconds"]
    return result


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("jobs", nargs="*", type=int, default=list(DEFAULT_JOB_COUNTS))
    parser.add_argument("--custom-job", action="store_true", help="CustomJob steps (needs GCPC)")
    parser.add_argument("--max-parallel", type=int, help="lanes: each step after another's")
    args = parser.parse_args(argv)
    result = measure(args.jobs, args.custom_job, args.max_parallel)
    kind = "CustomJob steps" if args.custom_job else "container steps"
    for count, build in result["builds"].items():
        print(
            f"{count:>6} jobs ({kind}): build + compile {build['seconds']:7.2f} s "
            f"(CPU {build['cpu_seconds']:6.2f} s; median of {int(build['runs'])}), "
            f"spec {build['spec_bytes'] / 1024:8.1f} KiB"
        )
    if result["ratio_3000_300"] is not None:
        print(
            f"3000 ÷ 300 jobs: {result['ratio_3000_300']:.2f} "
            f"(CPU {result['cpu_ratio_3000_300']:.2f}; target ≤ 11)"
        )
    if 10_000 in result["builds"]:
        seconds = result["builds"][10_000]["seconds"]
        verdict = "met" if seconds <= 10 else "NOT met"
        print(f"10 000 jobs: {seconds:.2f} s (target ≤ 10 s): {verdict}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
