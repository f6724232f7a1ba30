"""Compose: each job's sweep config, number and output dir, before anything leaves this machine."""

from __future__ import annotations

import copy
import pickle
import zlib
from dataclasses import astuple
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.config_repository import CachingConfigRepository, IConfigRepository
from hydra.core.config_loader import ConfigLoader
from hydra.core.default_element import ResultDefault
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.utils import filter_overrides
from hydra.plugins.config_source import ConfigResult
from hydra.types import HydraContext
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import InterpolationResolutionError

from .._shared._job_dirs import RUN_DIR_KEYS, SWEEP_DIR_KEYS, DirKeys, job_output_dir
from .._shared._overrides import task_overrides

# A task's display name in the Vertex console: long enough to tell jobs apart at a glance,
# short enough that a job adds at most ~500 bytes to the spec whatever its overrides.
DISPLAY_NAME_LIMIT = 72


class ComposedJob:
    """A job as composed here. Its config is kept pickled and compressed (~3 KiB, where the
    config itself takes ~100 KiB): a launch of thousands of jobs holds no config but the one it
    works on. Each read of sweep_config is a fresh copy: a reader that needs it several times
    (or changes it) reads it once."""

    def __init__(
        self,
        num: int,
        overrides: List[str],
        sweep_config: DictConfig,
        local_dir: Path,
        display_name: str,
        dir_keys: DirKeys = SWEEP_DIR_KEYS,
    ) -> None:
        self.num = num
        self.overrides = overrides
        # Where Hydra's basic launcher would put this job's outputs.
        self.local_dir = local_dir
        self.display_name = display_name
        self.dir_keys = dir_keys
        self.job_name = str(OmegaConf.select(sweep_config, "hydra.job.name"))
        # Whether run_job changes into the output dir: hydra.job.chdir, unset meaning no.
        self.chdir = bool(OmegaConf.select(sweep_config, "hydra.job.chdir"))
        self._config: Union[bytes, DictConfig] = _packed(sweep_config)

    @property
    def sweep_config(self) -> DictConfig:
        return _unpacked(self._config)


def _packed(config: DictConfig) -> Union[bytes, DictConfig]:
    """The config pickled and compressed; itself where it does not pickle (kept as it is)."""
    try:
        return zlib.compress(pickle.dumps(config, protocol=pickle.HIGHEST_PROTOCOL), 1)
    except Exception:  # noqa: BLE001 - e.g. a value of a class defined inside a function
        return config


def _unpacked(packed: Union[bytes, DictConfig]) -> DictConfig:
    """A fresh copy of what _packed kept."""
    if isinstance(packed, bytes):
        config: DictConfig = pickle.loads(zlib.decompress(packed))
        return config
    return copy.deepcopy(packed)


def compose(
    hydra_context: HydraContext,
    master_config: DictConfig,
    job_overrides: Sequence[Sequence[str]],
    initial_job_idx: int,
) -> List[ComposedJob]:
    loader = launch_loader(hydra_context.config_loader)
    composed = [
        _compose_one(loader, master_config, list(overrides), initial_job_idx + idx)
        for idx, overrides in enumerate(job_overrides)
    ]
    if isinstance(loader, _LaunchConfigLoader):
        loader.forget_checked()
    return composed


def share_with_sweeper(hydra_context: HydraContext) -> None:
    """The sweeper composes with the launches' loader too: a sweeper composes every job of a
    batch once to check it (Sweeper.validate_batch_is_legal) right before it launches that
    batch, and the launch then takes those configs instead of composing each job again."""
    hydra_context.config_loader = launch_loader(hydra_context.config_loader)


def launch_loader(loader: ConfigLoader) -> ConfigLoader:
    """Hydra's own loader for one launch's jobs, caching what they share; another loader as is."""
    if type(loader) is not ConfigLoaderImpl:
        return loader
    return _LaunchConfigLoader(loader)


def _unchanged(loader: ConfigLoader) -> ConfigLoader:
    return loader


class _LaunchConfigLoader(ConfigLoaderImpl):
    """Hydra's ConfigLoaderImpl, composing every job with Hydra's own code, with one cache
    for all the jobs of a launch.

    Hydra gives each composition a fresh CachingConfigRepository, so it reads and parses every
    config file (and copies every structured config) again for every job, then merges them
    again. Here one repository per search path serves every job, and each distinct defaults
    list is merged once; a job gets its own copy of that merge, onto which Hydra applies the
    job's overrides and its hydra.runtime and hydra.job values as usual.
    """

    def __init__(self, loader: ConfigLoaderImpl) -> None:
        # Not super().__init__: the launch shares Hydra's search path and repository.
        self.original = loader
        self.config_search_path = loader.config_search_path
        self.repository = loader.repository
        self._repositories: Dict[Tuple[Optional[str], Tuple[str, ...]], CachingConfigRepository]
        self._repositories = {}
        self._merged: Dict[Tuple[object, ...], DictConfig] = {}
        # What the sweeper composed to check a batch, by overrides, until its launch takes it:
        # packed, as a batch of thousands of configs would take gigabytes.
        self._checked: Dict[Tuple[str, ...], Tuple[DictConfig, Union[bytes, DictConfig]]] = {}

    def __reduce__(self) -> Tuple[Any, ...]:
        # Pickled (as part of the steps' Hydra context) as the loader it stands for, no caches.
        return (_unchanged, (self.original,))

    def load_sweep_config(
        self, master_config: DictConfig, sweep_overrides: List[str]
    ) -> DictConfig:
        composed = super().load_sweep_config(master_config, sweep_overrides)
        # The sweeper drops what it composed to check a batch: the batch's launch takes it.
        self._checked[tuple(sweep_overrides)] = (master_config, _packed(composed))
        return composed

    def sweep_config(self, master_config: DictConfig, overrides: List[str]) -> DictConfig:
        """The job's config: the one composed to check its batch, else composed now."""
        checked = self._checked.pop(tuple(overrides), None)
        if checked is not None and checked[0] is master_config:
            return _unpacked(checked[1])
        return super().load_sweep_config(master_config, overrides)

    def forget_checked(self) -> None:
        """What no launch took (a sweeper's check of a batch it did not launch)."""
        self._checked.clear()

    def _parse_overrides_and_create_caching_repo(
        self, config_name: Optional[str], overrides: List[str]
    ) -> Tuple[List[Override], CachingConfigRepository]:
        parsed = OverridesParser.create().parse_overrides(overrides=overrides)
        # The primary config and a hydra.searchpath override decide the search path.
        key = (config_name, tuple(str(o.input_line) for o in parsed if _sets_searchpath(o)))
        if key not in self._repositories:
            repository = CachingConfigRepository(self.repository)
            self._process_config_searchpath(config_name, parsed, repository)
            self._repositories[key] = repository
        return parsed, self._repositories[key]

    def _compose_config_from_defaults_list(
        self, defaults: List[ResultDefault], repo: IConfigRepository
    ) -> DictConfig:
        # The repository stands for its search path: the same defaults may come from elsewhere.
        key = (id(repo), *(astuple(default) for default in defaults))
        if key not in self._merged:
            # Merging moves nodes out of the loaded configs: merge copies, keep the cache intact.
            merged = super()._compose_config_from_defaults_list(defaults, _CopyingRepository(repo))
            self._merged[key] = merged
        return copy.deepcopy(self._merged[key])


def _sets_searchpath(override: Override) -> bool:
    return bool(override.get_key_element() == "hydra.searchpath")


class _CopyingRepository(CachingConfigRepository):
    """Hands out copies of what the launch's repository loaded, which Hydra may then change."""

    def __init__(self, cached: IConfigRepository) -> None:
        # Not super().__init__, which would copy the repository: this one only reads through it.
        self.delegate = cached

    def load_config(self, config_path: str) -> Optional[ConfigResult]:
        return copy.deepcopy(self.delegate.load_config(config_path))


def compose_single(config: DictConfig) -> ComposedJob:
    """A run without -m: Hydra composed it already; its outputs go to hydra.run.dir."""
    overrides = task_overrides(config)
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
    loader: ConfigLoader, master_config: DictConfig, overrides: List[str], num: int
) -> ComposedJob:
    if isinstance(loader, _LaunchConfigLoader):
        sweep_config = loader.sweep_config(master_config, overrides)
    else:
        sweep_config = loader.load_sweep_config(master_config, overrides)
    with open_dict(sweep_config):
        # As Hydra's basic launcher sets it: the job number (as a string, the field's type).
        sweep_config.hydra.job.id = num
        sweep_config.hydra.job.num = num
    # What HydraConfig.set_config does to the config itself, as Hydra's run_job has it done.
    OmegaConf.set_readonly(sweep_config.hydra, True)
    return ComposedJob(
        num=num,
        overrides=overrides,
        sweep_config=sweep_config,
        local_dir=_sweep_output_dir(sweep_config),
        display_name=display_name(num, overrides),
    )


def _sweep_output_dir(sweep_config: DictConfig) -> Path:
    """A job's output dir, which may read the hydra: resolver (the current HydraConfig).

    Setting the HydraConfig copies the job's whole hydra node, so it is set only for a dir that
    does read it; the HydraConfig is left as it was, as Hydra's run_job leaves it.
    """
    hydra_config = HydraConfig.instance()
    previous = hydra_config.cfg
    # Unset, the hydra: resolver fails rather than read another job's config.
    hydra_config.cfg = None
    try:
        try:
            return job_output_dir(sweep_config)
        except InterpolationResolutionError:
            hydra_config.set_config(sweep_config)
            return job_output_dir(sweep_config)
    finally:
        hydra_config.cfg = previous


def display_name(num: int, overrides: Sequence[str]) -> str:
    """What a person sees for the step in the Vertex console: the job number and its overrides."""
    shown = " ".join(filter_overrides(overrides)) or "(no overrides)"
    name = f"#{num} {shown}"
    return name if len(name) <= DISPLAY_NAME_LIMIT else name[: DISPLAY_NAME_LIMIT - 3] + "..."
