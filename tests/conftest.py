from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest
from fake_vertex import FakeVertex
from gcs_emulator import start_emulator
from tcp_proxy import SwitchableProxy

BUCKET = "hydra-staging"


class Emulator:
    def __init__(self) -> None:
        self.server, self.endpoint = start_emulator()

    def fresh_bucket(self, name: str) -> str:
        from google.cloud import storage

        self.server.wipe()
        storage.Client().create_bucket(name)
        return name


@pytest.fixture(scope="session")
def gcs() -> Iterator[Emulator]:
    emulator = Emulator()
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = emulator.endpoint
    yield emulator
    if previous is None:
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
    else:
        os.environ["STORAGE_EMULATOR_HOST"] = previous
    emulator.server.stop()


@pytest.fixture()
def gcs_bucket(gcs: Emulator) -> str:
    """A fresh, empty bucket on the emulator (STORAGE_EMULATOR_HOST points at it)."""
    return gcs.fresh_bucket(BUCKET)


@pytest.fixture()
def storage_proxy(gcs: Emulator) -> Iterator[SwitchableProxy]:
    """A proxy to the emulator, for the launcher alone (STORAGE_EMULATOR_HOST in its
    environment): the steps reach the emulator directly."""
    host, port = gcs.endpoint.removeprefix("http://").split(":")
    proxy = SwitchableProxy((host, int(port)))
    yield proxy
    proxy.close()


@pytest.fixture(params=["local", "gcs"])
def root_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A run's staging root, on a local folder and on Cloud Storage (the emulator)."""
    if request.param == "local":
        return str(tmp_path / "staging")
    return f"gs://{request.getfixturevalue('gcs_bucket')}/hydra/run-1"


@pytest.fixture()
def fake_vertex(gcs_bucket: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeVertex]:
    """A fake Vertex PipelineService whose steps reach the GCS emulator; a fresh bucket too."""
    fake = FakeVertex(scratch_root=tmp_path_factory.mktemp("vertex"), max_parallel=4).start()
    yield fake
    fake.stop()
