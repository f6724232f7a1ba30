"""Each job's config is exactly what Hydra's own load_sweep_config composes, errors included."""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, List

import pytest
from apputil import multirun_returns
from hydra import initialize_config_dir
from hydra._internal.callbacks import Callbacks
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.config_repository import ConfigRepository
from hydra.core.config_loader import ConfigLoader
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import HydraContext, RunMode
from hydra.version import VersionBase
from omegaconf import MISSING, Container, DictConfig, ListConfig, OmegaConf, open_dict

from hydra_plugins.hydra_vertex_pipeline_launcher._launch._compose import compose

CONF = Path(__file__).parent / "apps" / "compose_conf"
SEARCHPATH = Path(__file__).parent / "apps" / "compose_searchpath"
# What the sweeper hands on as the launch's own overrides, in hydra.overrides.hydra.
HYDRA_OVERRIDES = ["hydra.job.chdir=true", "hydra.job.name=composed"]
JOBS = [
    [],
    ["seed=1"],
    ["db=postgres", "seed=2"],
    ["optimizer=sgd", "optimizer.momentum=0.5"],
    ["server=large"],
    ["server=large", "optimizer=adam", "db.port=1"],
    ["+extra=${seed}", "~home"],
    ["hydra.job.chdir=false", "optimizer.lr=0.5"],
    ["db=postgres", "replica.host=other"],
    ["seed=3"],
    # The same defaults from two search paths: two different configs.
    ["+extra=x", f"hydra.searchpath=[file://{SEARCHPATH / 'a'}]"],
    ["+extra=x", f"hydra.searchpath=[file://{SEARCHPATH / 'b'}]"],
]


@dataclass
class Adam:
    lr: float = 0.001
    betas: List[float] = (0.9, 0.999)  # type: ignore[assignment]


@dataclass
class Sgd:
    lr: float = 0.1
    momentum: float = MISSING


@pytest.fixture()
def loader() -> Iterator[ConfigLoader]:
    """Hydra's loader for compose_conf; Hydra's global state is left as it was found."""
    store = ConfigStore.instance()
    hydra_config = HydraConfig.instance().cfg
    # initialize_config_dir sets the version base for the whole process and leaves it set.
    version_base = copy.copy(VersionBase.instance())
    assert "optimizer" not in store.repo
    store.store(group="optimizer", name="adam", node=Adam)
    store.store(group="optimizer", name="sgd", node=Sgd)
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base=None):
            yield GlobalHydra.instance().config_loader()
    finally:
        del store.repo["optimizer"]
        HydraConfig.instance().cfg = hydra_config
        VersionBase.set_instance(version_base)


def _master(loader: ConfigLoader) -> DictConfig:
    master = loader.load_configuration("config", HYDRA_OVERRIDES, RunMode.MULTIRUN)
    HydraConfig.instance().set_config(master)
    return master


def _hydra_composes(
    loader: ConfigLoader, master: DictConfig, overrides: List[str], num: int
) -> DictConfig:
    """What Hydra's basic launcher composes for job num."""
    config = loader.load_sweep_config(master, overrides)
    with open_dict(config):
        config.hydra.job.id = num
        config.hydra.job.num = num
    HydraConfig.instance().set_config(config)
    return config


def _shape(node: Any, path: str = "") -> Iterator[Any]:
    """Every node's path, class, types, flags and raw (unresolved) value."""
    meta = node._metadata
    yield path, type(node), meta.object_type, meta.ref_type, dict(meta.flags), meta.key
    if isinstance(node, DictConfig) and not node._is_missing() and not node._is_none():
        for key in node.keys():
            yield from _shape(node._get_node(key), f"{path}.{key}")
    elif isinstance(node, ListConfig) and not node._is_missing() and not node._is_none():
        for index in range(len(node)):
            yield from _shape(node._get_node(index), f"{path}[{index}]")
    elif not isinstance(node, Container):
        yield path, node._value()


def _resolved(config: DictConfig) -> Any:
    HydraConfig.instance().set_config(config)
    return OmegaConf.to_container(config, resolve=True, throw_on_missing=False)


def test_each_job_is_composed_exactly_as_hydra_composes_it(loader: ConfigLoader) -> None:
    master = _master(loader)
    context = HydraContext(config_loader=loader, callbacks=Callbacks())
    composed = compose(context, master, JOBS, initial_job_idx=5)
    for job, overrides in zip(composed, JOBS):
        expected = _hydra_composes(loader, master, overrides, job.num)
        assert list(_shape(job.sweep_config)) == list(_shape(expected)), overrides
        assert _resolved(job.sweep_config) == _resolved(expected), overrides
    assert [job.num for job in composed] == list(range(5, 5 + len(JOBS)))
    # The cases above do reach what they mean to.
    by_overrides = {tuple(o): job.sweep_config for o, job in zip(JOBS, composed)}
    assert by_overrides[("server=large",)].optimizer.lr == 0.1
    assert by_overrides[("server=large",)].replica.driver == "postgres"
    assert by_overrides[("hydra.job.chdir=false", "optimizer.lr=0.5")].hydra.job.chdir is False
    assert by_overrides[()].hydra.job.chdir is True
    assert by_overrides[()].hydra.job.env_set.APP_SEED == "0"
    assert [job.sweep_config.extra.source for job in composed[-2:]] == ["a", "b"]


BAD_OVERRIDES = [
    "db=nope",
    "optimizer.lr=fast",
    "+seed=4",
    "nokey=1",
    "~nokey",
    "hydra.job.chdir=maybe",
    "seed=[1",
    "server=large,small",
]


@pytest.mark.parametrize("bad", BAD_OVERRIDES)
def test_a_bad_override_in_any_job_fails_as_hydra_fails(loader: ConfigLoader, bad: str) -> None:
    master = _master(loader)
    context = HydraContext(config_loader=loader, callbacks=Callbacks())
    with pytest.raises(Exception) as by_hydra:
        loader.load_sweep_config(master, ["seed=1", bad])
    with pytest.raises(Exception) as by_us:
        compose(context, master, [["seed=5"], ["seed=1"], ["seed=1", bad]], initial_job_idx=0)
    assert type(by_us.value) is type(by_hydra.value)
    assert str(by_us.value) == str(by_hydra.value)
    assert repr(by_us.value.__cause__) == repr(by_hydra.value.__cause__)


def test_a_launch_reads_each_config_once_however_many_jobs(
    loader: ConfigLoader, monkeypatch: pytest.MonkeyPatch
) -> None:
    master = _master(loader)
    context = HydraContext(config_loader=loader, callbacks=Callbacks())
    reads: List[str] = []
    read = ConfigRepository.load_config

    def counted(self: ConfigRepository, config_path: str) -> Any:
        reads.append(config_path)
        return read(self, config_path)

    monkeypatch.setattr(ConfigRepository, "load_config", counted)
    compose(context, master, [["seed=0"]], initial_job_idx=0)
    one_job = sorted(reads)
    reads.clear()
    compose(context, master, [[f"seed={n}"] for n in range(12)], initial_job_idx=0)
    assert sorted(reads) == one_job


@pytest.mark.parametrize(
    "subdir", ["${hydra.job.num}", "${hydra:job.override_dirname}_${hydra:job.num}"]
)
def test_each_job_gets_the_output_dir_hydra_gives_it(loader: ConfigLoader, subdir: str) -> None:
    """Also when the dir reads the hydra: resolver, which reads the current HydraConfig."""
    master = loader.load_configuration(
        "config", [*HYDRA_OVERRIDES, f"hydra.sweep.subdir={subdir}"], RunMode.MULTIRUN
    )
    HydraConfig.instance().set_config(master)
    context = HydraContext(config_loader=loader, callbacks=Callbacks())
    before = HydraConfig.instance().cfg
    composed = compose(context, master, JOBS[:4], initial_job_idx=0)
    assert HydraConfig.instance().cfg is before
    for job, overrides in zip(composed, JOBS):
        expected = _hydra_composes(loader, master, overrides, job.num)
        sweep = expected.hydra.sweep
        assert job.local_dir == Path(os.path.abspath(os.path.join(sweep.dir, sweep.subdir)))
    assert len({job.local_dir for job in composed}) == 4


def test_a_sweep_composes_each_job_once_for_the_sweepers_check_and_the_launch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hydra's basic sweeper composes every job to check its batch, then the launcher composes
    it again; with this launcher, the launch takes the configs the check composed."""
    compositions: List[List[str]] = []
    load = ConfigLoaderImpl._load_configuration_impl

    def counted(self: ConfigLoaderImpl, **kwargs: Any) -> Any:
        compositions.append(list(kwargs["overrides"]))
        return load(self, **kwargs)

    monkeypatch.setattr(ConfigLoaderImpl, "_load_configuration_impl", counted)
    monkeypatch.chdir(tmp_path)
    jobs = "+x=1,2,3"
    basic = multirun_returns(["hydra/launcher=basic", f"hydra.sweep.dir={tmp_path / 'b'}", jobs])
    assert len(compositions) == 1 + 2 * 3  # the app's, then each job's: the check's, the launch's
    compositions.clear()
    local = ["hydra/launcher=vertex_pipeline_local", f"hydra.sweep.dir={tmp_path / 'l'}", jobs]
    ours = multirun_returns(local)
    assert len(compositions) == 1 + 3
    assert [r.return_value for r in ours] == [r.return_value for r in basic] == [10, 20, 30]
    assert [r.cfg for r in ours] == [r.cfg for r in basic]
    assert [r.hydra_cfg.hydra.job.num for r in ours] == [0, 1, 2]
