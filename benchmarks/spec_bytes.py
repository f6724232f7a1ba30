"""Spec bytes a job adds to the compiled pipeline, in payload mode and in command mode with
large overrides (one 2000-character override, or 200 overrides), built by the launcher's own
build: (bytes of the spec of N jobs - bytes of the spec of 1 job) / (N - 1)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Dict, List

from omegaconf import OmegaConf

from hydra_plugins.hydra_vertex_pipeline_launcher._launch._build import build_pipeline
from hydra_plugins.hydra_vertex_pipeline_launcher._launch._command import CommandPlan
from hydra_plugins.hydra_vertex_pipeline_launcher._launch._compose import (
    ComposedJob,
    display_name,
)
from hydra_plugins.hydra_vertex_pipeline_launcher._launch._stage import StagedRun, sha256
from hydra_plugins.hydra_vertex_pipeline_launcher._shared._overrides import staged_overrides
from hydra_plugins.hydra_vertex_pipeline_launcher.config import settings_from

CASES = {
    "payload": lambda n: [f"x={n}"],
    "command, one 2000-character override": lambda n: [f"+text='{n:04d}{'a' * 1996}'"],
    "command, 200 overrides": lambda n: [f"+k{i}={n}" for i in range(200)],
}


def _spec_bytes(case: str, jobs: int) -> int:
    config = OmegaConf.create({"hydra": {"job": {"name": "bench"}}})
    overrides: Dict[int, List[str]] = {n: CASES[case](n) for n in range(jobs)}
    composed = [
        ComposedJob(n, overrides[n], config, Path(f"/tmp/bench/{n}"), display_name(n, overrides[n]))
        for n in range(jobs)
    ]
    if case == "payload":
        staged = StagedRun("0" * 64, {n: sha256(str(n).encode()) for n in range(jobs)}, {})
    else:
        plan = CommandPlan(["python", "train.py"], overrides)
        digests = {n: sha256(staged_overrides(o)) for n, o in overrides.items()}
        staged = StagedRun("", digests, {}, command=plan)
    settings = settings_from({"image": "europe-docker.pkg.dev/p/repo/train:1"})
    with tempfile.TemporaryDirectory() as scratch:
        spec = Path(scratch) / "pipeline.yaml"
        build_pipeline(
            settings, "bench", "gs://bucket/hydra/bench-run", composed, staged, spec,
            {n: settings for n in range(jobs)}, "k" * 64,
        )  # fmt: skip
        return spec.stat().st_size


def measure(jobs: int = 1000) -> Dict[str, float]:
    """Each case's spec bytes per job."""
    return {case: (_spec_bytes(case, jobs) - _spec_bytes(case, 1)) / (jobs - 1) for case in CASES}


if __name__ == "__main__":
    print(measure())
