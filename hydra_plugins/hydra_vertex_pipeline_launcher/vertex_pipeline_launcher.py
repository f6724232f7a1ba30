"""The Launcher Hydra instantiates: thin, so that every Hydra app can import it cheaply."""

from typing import Any, Optional, Sequence

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from .config import VertexPipelineLauncherConf, check_sweeper, settings_from, validate


class VertexPipelineLauncher(Launcher):
    def __init__(self, **settings: Any) -> None:
        self.settings: VertexPipelineLauncherConf = settings_from(settings)
        self.config: Optional[DictConfig] = None
        self.task_function: Optional[TaskFunction] = None
        self.hydra_context: Optional[HydraContext] = None

    def setup(
        self,
        *,
        hydra_context: HydraContext,
        task_function: TaskFunction,
        config: DictConfig,
    ) -> None:
        # Here, not in launch(): a sweeper creates the sweep dir between the two.
        validate(self.settings)
        check_sweeper(self.settings, config)
        self.config = config
        self.task_function = task_function
        self.hydra_context = hydra_context
        from ._launch._compose import share_with_sweeper

        share_with_sweeper(hydra_context)

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        assert self.config is not None and self.task_function is not None
        assert self.hydra_context is not None
        from ._launch import _flow

        return _flow.launch(
            settings=self.settings,
            hydra_context=self.hydra_context,
            task_function=self.task_function,
            master_config=self.config,
            job_overrides=job_overrides,
            initial_job_idx=initial_job_idx,
        )
