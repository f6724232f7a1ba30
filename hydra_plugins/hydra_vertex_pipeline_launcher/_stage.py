"""Stage: all jobs' readable configs and payloads go to the staging root in one transfer."""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List

import cloudpickle
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.types import HydraContext, TaskFunction
from omegaconf import Container, DictConfig, OmegaConf

from . import _layout
from ._compose import ComposedJob
from ._storage import Storage

_NO_DEFAULT = object()


@dataclass(frozen=True)
class StagedRun:
    shared_digest: str
    job_digests: Dict[int, str]
    # Object name below the run's staging root -> its bytes.
    blobs: Dict[str, bytes]


def pack(
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
        payload = cloudpickle.dumps({"sweep_config": job.sweep_config, "dir_keys": job.dir_keys})
        job_digests[job.num] = sha256(payload)
        blobs[_layout.job_payload(job.num)] = payload
        blobs.update(_readable_configs(job))
    return StagedRun(shared_digest=sha256(shared), job_digests=job_digests, blobs=blobs)


def upload(storage: Storage, staged: StagedRun) -> None:
    """The one place a run's configs and payloads leave this machine: one parallel transfer."""
    storage.check_access()
    storage.write_many(staged.blobs)


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
    HydraConfig.instance().set_config(sweep_config)
    resolved: Dict[str, Any] = {}
    with _env_lookups_as_text():
        for key in (k for k in sweep_config if k != "hydra"):
            try:
                value = sweep_config[key]
                if isinstance(value, Container):
                    value = OmegaConf.to_container(value, resolve=True)
            except Exception:  # noqa: BLE001 - a value the job itself will fail on stays as is
                value = OmegaConf.to_container(sweep_config, resolve=False)[key]
            resolved[key] = value
    return OmegaConf.to_yaml(resolved)


@contextmanager
def _env_lookups_as_text() -> Iterator[None]:
    """While active, ${oc.env:...} resolves to its own text, however deeply it is nested."""
    from omegaconf.resolvers import oc

    OmegaConf.register_new_resolver("oc.env", _env_lookup_text, replace=True)
    try:
        yield
    finally:
        OmegaConf.register_new_resolver("oc.env", oc.env, replace=True)


def _env_lookup_text(key: str, default: Any = _NO_DEFAULT) -> str:
    return f"${{oc.env:{key}}}" if default is _NO_DEFAULT else f"${{oc.env:{key},{default}}}"
