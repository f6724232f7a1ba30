"""Where Hydra's run_job puts a job's outputs, read from its config the same way by the launcher
(where collected outputs land) and by the step (where the job writes them)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Tuple

from omegaconf import DictConfig, OmegaConf

# Hydra's keys of a job's output dir (run_job's job_dir_key, job_subdir_key), by mode.
DirKeys = Tuple[str, Optional[str]]
SWEEP_DIR_KEYS: DirKeys = ("hydra.sweep.dir", "hydra.sweep.subdir")
RUN_DIR_KEYS: DirKeys = ("hydra.run.dir", None)


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
