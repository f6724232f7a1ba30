"""Settings that point the vertex_pipeline launcher at the fake Vertex and the GCS emulator."""

from __future__ import annotations

from pathlib import Path
from typing import List

from apputil import wait_until
from fake_vertex import FakeVertex

PROJECT = "test-proj"
LOCATION = "europe-west4"
IMAGE = "europe-docker.pkg.dev/test-proj/repo/train:1"


def vertex_overrides(fake: FakeVertex, bucket: str) -> List[str]:
    return [
        f"hydra.launcher.project={PROJECT}",
        f"hydra.launcher.location={LOCATION}",
        f"hydra.launcher.api_endpoint={fake.endpoint}",
        f"hydra.launcher.staging_root=gs://{bucket}/hydra",
        f"hydra.launcher.image={IMAGE}",
        "hydra.launcher.poll_interval=0.2",
        "hydra.launcher.max_poll_interval=1",
        "hydra.launcher.log_upload_interval=0.5",
        "hydra.launcher.request_timeout=20",
    ]


def sweep_args(fake: FakeVertex, bucket: str, sweep: Path, *overrides: str) -> List[str]:
    """A multirun of the given overrides on vertex_pipeline, against the fakes, into sweep."""
    return [
        "-m",
        *overrides,
        "hydra/launcher=vertex_pipeline",
        f"hydra.sweep.dir={sweep}",
        *vertex_overrides(fake, bucket),
    ]


def only_job(fake: FakeVertex) -> str:
    """The id of the one pipeline run the fake was asked to create, once it exists."""
    wait_until(lambda: len(fake.jobs) == 1)
    (job_id,) = fake.jobs
    return job_id
