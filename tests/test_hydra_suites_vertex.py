"""Hydra's own launcher suites on vertex_pipeline, against the fake Vertex and the GCS emulator."""

from __future__ import annotations

from typing import Any, Dict, List

import pytest
from conftest import BUCKET
from fake_vertex import FakeVertex
from hydra.test_utils.launcher_common_tests import (
    BatchedSweeperTestSuite,
    IntegrationTestSuite,
    LauncherTestSuite,
)
from vertexutil import vertex_overrides


@pytest.fixture()
def launcher_name() -> str:
    return "vertex_pipeline"


@pytest.fixture()
def overrides(fake_vertex: FakeVertex) -> List[str]:
    return vertex_overrides(fake_vertex, BUCKET)


@pytest.fixture()
def task_launcher_cfg() -> Dict[str, Any]:
    return {"defaults": [{"override hydra/launcher": "vertex_pipeline"}, "_self_"]}


@pytest.fixture()
def extra_flags(fake_vertex: FakeVertex) -> List[str]:
    return ["-m", *vertex_overrides(fake_vertex, BUCKET)]


class TestVertexLauncher(LauncherTestSuite):
    pass


class TestVertexLauncherBatched(BatchedSweeperTestSuite):
    @pytest.fixture()
    def overrides(self, fake_vertex: FakeVertex) -> List[str]:
        return [*vertex_overrides(fake_vertex, BUCKET), "hydra.sweeper.max_batch_size=2"]


class TestVertexLauncherIntegration(IntegrationTestSuite):
    # These assert the submitter's own paths, which a container cannot have; the mapping a
    # step uses instead is shown by test_vertex_backend.py:
    # test_working_dirs_map_into_the_container.
    test_custom_sweeper_run_workdir = None
    test_get_orig_dir_multirun = None
    test_to_absolute_path_multirun = None
