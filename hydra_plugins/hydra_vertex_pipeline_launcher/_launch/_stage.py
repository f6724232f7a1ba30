"""Stage: all jobs' readable configs and payloads go to the staging root in one transfer."""

from __future__ import annotations

import hashlib
import os
import types
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.types import HydraContext, TaskFunction
from omegaconf import Container, DictConfig, OmegaConf
from omegaconf._utils import OmegaConfDumper

from .._shared import _layout, _payload
from .._shared._app_main import MainScript, dumps_by_reference, dumps_by_value, launching_main
from .._shared._hydra_state import plain_plugin_nodes
from .._shared._overrides import staged_overrides
from .._shared._storage import Storage
from ..config import LauncherConfigError
from ._code import gather
from ._command import CommandPlan
from ._compose import ComposedJob

_NO_DEFAULT = object()


@dataclass(frozen=True)
class StagedRun:
    shared_digest: str
    job_digests: Dict[int, str]
    # Object name below the run's staging root -> its bytes.
    blobs: Dict[str, bytes]
    # execution=command: what each step's command gets; no payload is staged then.
    command: Optional[CommandPlan] = None


class UnpicklableJobError(LauncherConfigError):
    """Something every step needs cannot be pickled; raised before anything is uploaded."""


def pack(
    jobs: List[ComposedJob],
    task_function: TaskFunction,
    hydra_context: HydraContext,
    in_container: bool,
    ship_code: bool = False,
) -> StagedRun:
    """What every job shares is pickled once per run; per job only its sweep config.

    Each is pickled twice when it refers to the app's __main__: by reference, for a step that
    finds the app's main (the app's own classes then stay themselves), and by value, for one
    that does not (an image without the script).
    """
    main = launching_main(os.getcwd())  # the launch dir, where local steps run too
    gathered = gather(Path(os.path.realpath(os.getcwd())), main) if ship_code else None
    shared_parts = {
        "task_function": task_function,
        "hydra_context": hydra_context,
        "singleton_state": Singleton.get_state(),
    }
    code = gathered[0] if gathered else None
    shared = _payload.dumps(
        {"main": main, "in_container": in_container, "code": code, **_both_ways(shared_parts, main)}
    )
    blobs: Dict[str, bytes] = {_layout.SHARED_PAYLOAD: shared}
    if gathered:
        blobs[_layout.APP_CODE] = gathered[1]
    job_digests: Dict[int, str] = {}
    for job in jobs:
        config = job.sweep_config
        plain_plugin_nodes(config)
        job_parts = {"sweep_config": config, "dir_keys": job.dir_keys}
        payload = _payload.dumps(_both_ways(job_parts, main))
        job_digests[job.num] = sha256(payload)
        blobs[_layout.job_payload(job.num)] = payload
        blobs.update(_readable_configs(job, config))
    return StagedRun(shared_digest=sha256(shared), job_digests=job_digests, blobs=blobs)


def stage_readable(jobs: List[ComposedJob], command: CommandPlan) -> StagedRun:
    """Command mode: each step runs the app's own command, so only the readable configs go, and
    each job's override arguments (which may be long: the spec carries only their digest)."""
    blobs: Dict[str, bytes] = {}
    job_digests: Dict[int, str] = {}
    for job in jobs:
        overrides = staged_overrides(command.job_overrides[job.num])
        job_digests[job.num] = sha256(overrides)
        blobs[_layout.job_command_overrides(job.num)] = overrides
        blobs.update(_readable_configs(job, job.sweep_config))
    return StagedRun(shared_digest="", job_digests=job_digests, blobs=blobs, command=command)


def _both_ways(parts: Dict[str, Any], main: Optional[MainScript]) -> Dict[str, Optional[bytes]]:
    """By reference only where that differs: parts that refer to nothing of __main__ pickle
    to the same bytes both ways (a job's config, mostly), so they are pickled once."""
    if main is None:
        return {"by_reference": None, "by_value": _dumps_checked(parts)}
    try:
        by_reference, referenced_main = dumps_by_reference(parts)
    except Exception:  # noqa: BLE001 - pickling by value names what cannot be pickled
        by_reference, referenced_main = None, True
    if not referenced_main:
        return {"by_reference": None, "by_value": by_reference}
    return {"by_reference": by_reference, "by_value": _dumps_checked(parts)}


PART_NAMES = {
    "task_function": "the task function",
    "hydra_context": "Hydra's context (config loader, callbacks)",
    "singleton_state": "Hydra's global state (ConfigStore, resolvers)",
    "sweep_config": "the job's config",
}


def _dumps_checked(parts: Dict[str, Any]) -> bytes:
    try:
        return dumps_by_value(parts)
    except Exception as e:  # noqa: BLE001 - cloudpickle raises TypeError, PicklingError, ...
        culprit = _find_unpicklable(parts, "", set()) or "it"
        raise UnpicklableJobError(
            f"{culprit} cannot be pickled for the pipeline's steps ({e}). Create such an "
            "object inside the task function (each job then makes its own), or make it "
            "picklable. Nothing was uploaded."
        ) from e


def _find_unpicklable(obj: Any, label: str, seen: Set[int]) -> Optional[str]:
    """The innermost part of obj that cannot be pickled, named for a person."""
    if id(obj) in seen:
        return None
    seen.add(id(obj))
    for part_label, part in _parts(obj, label):
        try:
            dumps_by_value(part)
        except Exception:  # noqa: BLE001 - this part is the (or holds the) culprit
            kind = f"{type(part).__module__}.{type(part).__qualname__}"
            return _find_unpicklable(part, part_label, seen) or f"{part_label} (a {kind})"
    return None


def _parts(obj: Any, label: str) -> Iterator[Tuple[str, Any]]:
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield (f"{label}[{key!r}]" if label else PART_NAMES.get(key, str(key))), value
    elif isinstance(obj, (list, tuple)):
        for index, value in enumerate(obj):
            yield f"{label}[{index}]", value
    elif isinstance(obj, types.FunctionType):
        yield from _function_parts(obj)
    elif hasattr(obj, "__dict__") and not isinstance(obj, (type, types.ModuleType)):
        for key, value in vars(obj).items():
            yield f"{label}.{key}", value


def _function_parts(func: types.FunctionType) -> Iterator[Tuple[str, Any]]:
    name = f"function {func.__module__}.{func.__qualname__}"
    for global_name in sorted(_global_names(func.__code__)):
        if global_name in func.__globals__:
            yield f"global {global_name!r} used by {name}", func.__globals__[global_name]
    for var, cell in zip(func.__code__.co_freevars, func.__closure__ or ()):
        yield f"variable {var!r} captured by {name}", cell.cell_contents
    for index, default in enumerate(func.__defaults__ or ()):
        yield f"default #{index} of {name}", default


def _global_names(code: types.CodeType) -> Set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def upload(storage: Storage, staged: StagedRun) -> None:
    """The one place a run's configs and payloads leave this machine: one parallel transfer."""
    storage.write_many(staged.blobs)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _readable_configs(job: ComposedJob, config: DictConfig) -> Dict[str, bytes]:
    """config: the job's sweep config, read once."""
    prefix = _layout.job_prefix(job.num)
    hydra_node = OmegaConf.to_container(config.hydra, enum_to_str=True)
    return {
        f"{prefix}/config.yaml": _task_config_yaml(config).encode(),
        f"{prefix}/overrides.yaml": to_yaml(list(job.overrides)).encode(),
        f"{prefix}/hydra.yaml": to_yaml(hydra_node).encode(),
    }


def to_yaml(container: Any) -> str:
    """OmegaConf.to_yaml's text for a plain container, emitted by libyaml where PyYAML has it:
    a sixth of the time, which at thousands of jobs is seconds of every launch."""
    return yaml.dump(
        container,
        default_flow_style=False,
        allow_unicode=True,
        sort_keys=False,
        Dumper=_YamlDumper,
    )


class _YamlDumper(getattr(yaml, "CDumper", yaml.Dumper)):  # type: ignore[misc]
    """OmegaConf's dumper (strings that read as another type are quoted), in C."""


_YamlDumper.add_representer(str, OmegaConfDumper.str_representer)


def _task_config_yaml(sweep_config: DictConfig) -> str:
    """The task config as the job will see it, resolved where it can be before the job runs.

    Environment lookups stay as written: the step resolves them from its own environment, and
    this machine's values (tokens, say) have no business in a bucket.
    """
    as_written = {
        key: _as_written(value)
        for key, value in sweep_config.items_ex(resolve=False)
        if key != "hydra"
    }
    if not _interpolates(as_written):
        return to_yaml(as_written)  # nothing to resolve: no need to make it Hydra's config
    HydraConfig.instance().set_config(sweep_config)
    resolved: Dict[str, Any] = {}
    with _env_lookups_as_text():
        for key in as_written:
            try:
                value = sweep_config[key]
                if isinstance(value, Container):
                    value = OmegaConf.to_container(value, resolve=True)
            except Exception:  # noqa: BLE001 - a value the job itself will fail on stays as is
                value = as_written[key]
            resolved[key] = value
    return OmegaConf.to_yaml(resolved)


def _as_written(value: Any) -> Any:
    """A value as OmegaConf.to_yaml writes it: plain containers, enums by name."""
    if isinstance(value, Container):
        return OmegaConf.to_container(value, enum_to_str=True)
    return value.name if isinstance(value, Enum) else value


def _interpolates(value: Any) -> bool:
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, dict):
        return any(_interpolates(item) for item in value.values())
    if isinstance(value, list):
        return any(_interpolates(item) for item in value)
    return False


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
