"""Stage: all jobs' readable configs and payloads go to the staging root in one transfer."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Dict, List

import cloudpickle
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from . import _layout
from ._compose import ComposedJob
from ._storage import Storage


@dataclass(frozen=True)
class StagedRun:
    shared_digest: str
    job_digests: Dict[int, str]


def stage(
    storage: Storage,
    jobs: List[ComposedJob],
    task_function: TaskFunction,
    hydra_context: HydraContext,
    in_container: bool,
) -> StagedRun:
    """What every job shares is pickled once per run; per job only its sweep config."""
    shared = cloudpickle.dumps(
        {
            "task_function": task_function,
            "hydra_context": hydra_context,
            "singleton_state": Singleton.get_state(),
            "in_container": in_container,
        }
    )
    blobs: Dict[str, bytes] = {_layout.SHARED_PAYLOAD: shared}
    job_digests: Dict[int, str] = {}
    for job in jobs:
        payload = cloudpickle.dumps({"sweep_config": job.sweep_config})
        job_digests[job.num] = sha256(payload)
        blobs[_layout.job_payload(job.num)] = payload
        blobs.update(_readable_configs(job))
    storage.check_access()
    storage.write_many(blobs)
    return StagedRun(shared_digest=sha256(shared), job_digests=job_digests)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _readable_configs(job: ComposedJob) -> Dict[str, bytes]:
    prefix = _layout.job_prefix(job.num)
    return {
        f"{prefix}/config.yaml": _task_config_yaml(job.sweep_config).encode(),
        f"{prefix}/overrides.yaml": OmegaConf.to_yaml(job.overrides).encode(),
        f"{prefix}/hydra.yaml": OmegaConf.to_yaml(job.sweep_config.hydra).encode(),
    }


def _task_config_yaml(sweep_config: DictConfig) -> str:
    """The task config as the job will see it: resolved where it can be before the job runs."""
    task_config = OmegaConf.masked_copy(sweep_config, [k for k in sweep_config if k != "hydra"])
    with open_dict(task_config):
        task_config.hydra = sweep_config.hydra  # for ${hydra:...} and ${hydra.x} while resolving
    HydraConfig.instance().set_config(sweep_config)
    try:
        resolved: Any = OmegaConf.to_container(task_config, resolve=True)
    except Exception:  # noqa: BLE001 - a value the job itself will fail on stays as written
        resolved = OmegaConf.to_container(task_config, resolve=False)
    resolved.pop("hydra", None)
    return OmegaConf.to_yaml(resolved)
