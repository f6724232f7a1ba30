"""Stage: all jobs' readable configs and payloads go to the staging root in one transfer."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Dict, List

import cloudpickle
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.types import HydraContext, TaskFunction
from omegaconf import Container, DictConfig, OmegaConf

from . import _layout
from ._compose import ComposedJob
from ._storage import Storage

ENV_LOOKUP = re.compile(r"\$\{(oc\.env|env):")


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
    """The task config as the job will see it, resolved where it can be before the job runs.

    Environment lookups stay as written: the step resolves them from its own environment, and
    this machine's values (tokens, say) have no business in a bucket.
    """
    readable = OmegaConf.create(_keep_env_lookups(OmegaConf.to_container(sweep_config)))
    HydraConfig.instance().set_config(sweep_config)
    resolved: Dict[str, Any] = {}
    for key in (k for k in readable if k != "hydra"):
        try:
            value = readable[key]
            resolved[key] = (
                OmegaConf.to_container(value, resolve=True)
                if isinstance(value, Container)
                else value
            )
        except Exception:  # noqa: BLE001 - a value the job itself will fail on stays as written
            resolved[key] = OmegaConf.to_container(readable, resolve=False)[key]
    return OmegaConf.to_yaml(resolved)


def _keep_env_lookups(node: Any) -> Any:
    """Escapes ${oc.env:...} so that resolving leaves it as text."""
    if isinstance(node, dict):
        return {key: _keep_env_lookups(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_keep_env_lookups(value) for value in node]
    if isinstance(node, str):
        return ENV_LOOKUP.sub(lambda m: "\\" + m.group(0), node)
    return node
