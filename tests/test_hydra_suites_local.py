"""Hydra's own launcher suites, on the local backend."""

from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.test_utils.launcher_common_tests import (
    BatchedSweeperTestSuite,
    IntegrationTestSuite,
    LauncherTestSuite,
)
from pytest import mark

from hydra_plugins.hydra_vertex_pipeline_launcher.vertex_pipeline_launcher import (
    VertexPipelineLauncher,
)


def test_discovery() -> None:
    launchers = [x.__name__ for x in Plugins.instance().discover(Launcher)]
    assert VertexPipelineLauncher.__name__ in launchers


@mark.parametrize("launcher_name, overrides", [("vertex_pipeline_local", [])])
class TestLocalLauncher(LauncherTestSuite):
    pass


@mark.parametrize(
    "launcher_name, overrides",
    [("vertex_pipeline_local", ["hydra.sweeper.max_batch_size=2"])],
)
class TestLocalLauncherBatched(BatchedSweeperTestSuite):
    pass


@mark.parametrize(
    "task_launcher_cfg, extra_flags",
    [({"defaults": [{"override hydra/launcher": "vertex_pipeline_local"}, "_self_"]}, ["-m"])],
)
class TestLocalLauncherIntegration(IntegrationTestSuite):
    pass
