from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Iterator

import image_env
import pytest
from fake_vertex import FakeVertex
from gcs_emulator import start_emulator
from tcp_proxy import SwitchableProxy

BUCKET = "hydra-staging"
EXAMPLE_DOCKERFILE = image_env.REPO / "example_app" / "Dockerfile"
# The one skip CI accepts, and only in an environment without the [customjob] extra.
CUSTOMJOB_SKIP = "needs the [customjob] extra"


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    return str(longrepr[2] if isinstance(longrepr, tuple) else longrepr)


def _expected_skip(reason: str) -> bool:
    has_extra = importlib.util.find_spec("google_cloud_pipeline_components") is not None
    return CUSTOMJOB_SKIP in reason and not has_extra


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """On CI (CI=true) a skipped test fails the run: a green CI that skipped what it was meant to
    run would say nothing about it."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if os.environ.get("CI") != "true" or reporter is None:
        return
    skipped = reporter.stats.get("skipped", [])
    unexpected = [r for r in skipped if not _expected_skip(_skip_reason(r))]
    for report in unexpected:
        reporter.write_line(f"CI: unexpected skip: {report.nodeid}: {_skip_reason(report)}")
    if unexpected and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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
    # A step is not the laptop: every Vertex test's steps run with the image-like Python.
    fake.python = str(image_env.image_python())
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def image_python() -> Path:
    """The Python of an image-like virtualenv: the plugin as installed from this checkout and
    the apps' dependencies, nothing else (made once, kept across sessions: tests/image_env.py)."""
    return image_env.image_python()


@pytest.fixture(params=["empty", "dockerfile"])
def image_workdir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image's working dir: empty, or what example_app/Dockerfile copies into it."""
    target = tmp_path_factory.mktemp("image-workdir")
    if request.param == "empty":
        return target
    return image_env.dockerfile_workdir(EXAMPLE_DOCKERFILE, image_env.REPO, target)


@pytest.fixture()
def image_vertex(
    fake_vertex: FakeVertex, image_python: Path, image_workdir: Path
) -> Iterator[FakeVertex]:
    """The fake Vertex whose steps run as in an image: its Python (image_python) from its
    working dir (image_workdir, both cases), not the launching environment."""
    fake_vertex.python = str(image_python)
    fake_vertex.image_dir = image_workdir
    yield fake_vertex
