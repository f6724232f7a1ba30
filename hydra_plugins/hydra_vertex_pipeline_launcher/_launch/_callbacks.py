"""Hydra callbacks this plugin registers with its launcher configs.

Hydra calls a launcher only in multirun mode: a run without -m would train on this machine,
silently. SingleRunOnPipeline catches such a run at its start and sends it, as a one-step
pipeline run, through the same flow as a sweep's jobs.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Optional

import hydra._internal.hydra as hydra_run_mode
from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from ..config import IN_STEP_ENV, LAUNCHER_TARGET, settings_from, validate

log = logging.getLogger(__name__)


class SingleRunOnPipeline(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Only what cannot fail happens here: Hydra turns a callback's exception into a
        # warning and would go on to run the job on this machine.
        if os.environ.get(IN_STEP_ENV) or config.hydra.launcher.get("_target_") != LAUNCHER_TARGET:
            return  # inside a step, or the user's launcher config swapped ours out
        _take_over_next_run_job()


def _take_over_next_run_job() -> None:
    """Hydra's run mode offers no launcher hook: the one run_job call that follows
    on_run_start (in hydra._internal.hydra.Hydra.run) comes here instead."""
    run_job_in_process = hydra_run_mode.run_job

    def run_job_on_pipeline(
        *,
        hydra_context: HydraContext,
        task_function: TaskFunction,
        config: DictConfig,
        job_dir_key: str,
        job_subdir_key: Optional[str],
        configure_logging: bool = True,
    ) -> JobReturn:
        hydra_run_mode.run_job = run_job_in_process  # once: a later run in this process is own
        settings = settings_from(_settings_node(config))
        validate(settings)
        # A dry run never runs the job: it plans the one-step pipeline run.
        if settings.single_run == "in_process" and not settings.dry_run:
            log.info(
                "Running in this process (hydra.launcher.single_run=in_process); "
                "set it to pipeline to run as a one-step pipeline run."
            )
            return run_job_in_process(
                hydra_context=hydra_context,
                task_function=task_function,
                config=config,
                job_dir_key=job_dir_key,
                job_subdir_key=job_subdir_key,
                configure_logging=configure_logging,
            )
        log.info(
            f"Running as a one-step pipeline run on the {settings.backend} backend "
            "(hydra.launcher.single_run=in_process runs it in this process instead)."
        )
        from . import _flow

        return _flow.launch_single(settings, hydra_context, task_function, config)

    hydra_run_mode.run_job = run_job_on_pipeline


def _settings_node(config: DictConfig) -> Any:
    from omegaconf import OmegaConf

    node = OmegaConf.to_container(config.hydra.launcher, resolve=True)
    assert isinstance(node, dict)
    node.pop("_target_", None)
    return node
