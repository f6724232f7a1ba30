"""A launcher watching an N-job run on a (fake) Vertex, as `launch` watches it, until a signal.

Usage: python benchmarks/_vertex_watch.py API_ENDPOINT JOBS WORKDIR

Builds the spec of JOBS trivial jobs with the launcher's own build, creates the run through the
vertex backend at API_ENDPOINT and watches it through the launcher's own flow (submit_and_watch:
status files in WORKDIR/<num>, the run's record), as a launch does once its jobs are staged.
SIGTERM then takes the launcher's path: cancel the run, mark every unfinished job, exit 143.
Nothing is staged: the run's steps are held (the fake Vertex's hold_tasks), none ever starts.
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import OmegaConf

from hydra_plugins.hydra_vertex_pipeline_launcher._backends._base import State, TaskStatus
from hydra_plugins.hydra_vertex_pipeline_launcher._backends._vertex import VertexBackend
from hydra_plugins.hydra_vertex_pipeline_launcher._launch import _flow
from hydra_plugins.hydra_vertex_pipeline_launcher._launch._build import build_pipeline
from hydra_plugins.hydra_vertex_pipeline_launcher._launch._compose import (
    ComposedJob,
    display_name,
)
from hydra_plugins.hydra_vertex_pipeline_launcher._launch._stage import StagedRun
from hydra_plugins.hydra_vertex_pipeline_launcher._launch._watch import Outcome, WatchedJob
from hydra_plugins.hydra_vertex_pipeline_launcher.config import settings_from


def main() -> None:
    endpoint, jobs, workdir = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    settings = settings_from(
        {
            "backend": "vertex",
            "project": "p",
            "location": "europe-west4",
            "api_endpoint": endpoint,
            "image": "europe-docker.pkg.dev/p/repo/train:1",
            "staging_root": "gs://bench/hydra",
            "poll_interval": 1.0,
            "max_poll_interval": 2.0,
            "request_timeout": 30.0,
        }
    )
    config = OmegaConf.create({"x": 0, "hydra": {"job": {"name": "bench"}}})
    composed = [
        ComposedJob(n, [f"x={n}"], config, workdir / str(n), display_name(n, [f"x={n}"]))
        for n in range(jobs)
    ]
    staged = StagedRun("0" * 64, {job.num: f"{job.num:064x}" for job in composed}, {})
    run = _flow.new_run(settings, "bench", workdir)
    run.spec_path.parent.mkdir(parents=True, exist_ok=True)
    task_jobs = build_pipeline(
        settings,
        run.pipeline_name,
        run.staging_uri,
        composed,
        staged,
        run.spec_path,
        {job.num: settings for job in composed},
        run.result_key,
    )
    watched = [
        WatchedJob(num, task, composed[num].display_name, composed[num].local_dir, "bench.log")
        for task, num in task_jobs.items()
    ]
    backend = VertexBackend(settings, run)

    def never_ends(job: WatchedJob, task: TaskStatus) -> Outcome:
        return Outcome(State.FAILED, f"job #{job.num} ended, which no held step can")

    try:
        _flow.submit_and_watch(settings, backend, run, watched, never_ends)
    finally:
        backend.close()


if __name__ == "__main__":
    main()
