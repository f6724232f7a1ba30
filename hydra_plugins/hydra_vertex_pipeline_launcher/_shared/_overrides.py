"""A job's overrides as Hydra records them, and a command-mode job's overrides as the launcher
stages them (one JSON file per job, its digest in the job's task) and the step reads them."""

from __future__ import annotations

import json
from typing import List

from omegaconf import DictConfig, OmegaConf


def staged_overrides(overrides: List[str]) -> bytes:
    """A command-mode job's override arguments as staged: a JSON list of strings, UTF-8."""
    return json.dumps(overrides, ensure_ascii=False).encode("utf-8")


def read_staged_overrides(data: bytes) -> List[str]:
    """What staged_overrides wrote (its digest checked by the caller): a list of strings."""
    overrides = json.loads(data.decode("utf-8"))
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise ValueError("the staged overrides are not a JSON list of strings")
    return overrides


def task_overrides(config: DictConfig) -> List[str]:
    """The job's overrides as given, as Hydra's run_job writes them: an interpolation in one
    (`+token=${oc.env:TOKEN}`) stays unresolved."""
    overrides: List[str] = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
    return overrides
