"""Compose: each job's sweep config, number and output dir, before anything leaves this machine."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import filter_overrides
from hydra.types import HydraContext
from omegaconf import DictConfig, OmegaConf, open_dict

DISPLAY_NAME_LIMIT = 128
# Hydra's keys of a job's output dir (run_job's job_dir_key, job_subdir_key), by mode.
DirKeys = Tuple[str, Optional[str]]
SWEEP_DIR_KEYS: DirKeys = ("hydra.sweep.dir", "hydra.sweep.subdir")
RUN_DIR_KEYS: DirKeys = ("hydra.run.dir", None)


@dataclass(frozen=True)
class ComposedJob:
    num: int
    overrides: List[str]
    sweep_config: DictConfig
    # Where Hydra's basic launcher would put this job's outputs.
    local_dir: Path
    display_name: str
    dir_keys: DirKeys = SWEEP_DIR_KEYS


def compose(
    hydra_context: HydraContext,
    master_config: DictConfig,
    job_overrides: Sequence[Sequence[str]],
    initial_job_idx: int,
) -> List[ComposedJob]:
    return [
        _compose_one(hydra_context, master_config, list(overrides), initial_job_idx + idx)
        for idx, overrides in enumerate(job_overrides)
    ]


def compose_single(config: DictConfig) -> ComposedJob:
    """A run without -m: Hydra composed it already; its outputs go to hydra.run.dir."""
    overrides = list(config.hydra.overrides.task)
    return ComposedJob(
        num=0,
        overrides=overrides,
        sweep_config=config,
        # Resolves ${now:...} once; the cache travels with the config to the step.
        local_dir=job_output_dir(config, RUN_DIR_KEYS),
        display_name=display_name(0, overrides),
        dir_keys=RUN_DIR_KEYS,
    )


def _compose_one(
    hydra_context: HydraContext, master_config: DictConfig, overrides: List[str], num: int
) -> ComposedJob:
    sweep_config = hydra_context.config_loader.load_sweep_config(master_config, overrides)
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{num}"
        sweep_config.hydra.job.num = num
    # The output dir may use the hydra: resolver, which reads the current HydraConfig.
    HydraConfig.instance().set_config(sweep_config)
    return ComposedJob(
        num=num,
        overrides=overrides,
        sweep_config=sweep_config,
        local_dir=job_output_dir(sweep_config),
        display_name=display_name(num, overrides),
    )


def job_output_path(config: DictConfig, dir_keys: DirKeys = SWEEP_DIR_KEYS) -> str:
    """A job's output dir as Hydra's run_job joins it: as written, often relative."""
    dir_key, subdir_key = dir_keys
    output_dir = str(OmegaConf.select(config, dir_key))
    if subdir_key is None:
        return output_dir
    return os.path.join(output_dir, str(OmegaConf.select(config, subdir_key)))


def job_output_dir(config: DictConfig, dir_keys: DirKeys = SWEEP_DIR_KEYS) -> Path:
    """Where Hydra's run_job puts a job's outputs, absolute and normalised as Hydra's
    hydra.runtime.output_dir."""
    return Path(os.path.abspath(job_output_path(config, dir_keys)))


def display_name(num: int, overrides: Sequence[str]) -> str:
    """What a person sees for the step in the Vertex console: the job number and its overrides."""
    shown = " ".join(filter_overrides(overrides)) or "(no overrides)"
    name = f"#{num} {shown}"
    return name if len(name) <= DISPLAY_NAME_LIMIT else name[: DISPLAY_NAME_LIMIT - 3] + "..."
