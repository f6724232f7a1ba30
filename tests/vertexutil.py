"""Settings that point the vertex_pipeline launcher at the fake Vertex and the GCS emulator."""

from __future__ import annotations

from typing import List

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
