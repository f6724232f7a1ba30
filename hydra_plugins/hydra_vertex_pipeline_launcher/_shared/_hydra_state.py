"""Hydra's state as a step restores it: what its job uses, not every plugin of the launcher's.

Hydra's ConfigStore holds the config classes of every Hydra plugin installed where the app was
launched (sweepers, launchers, their samplers), and a job's config keeps the classes its
`hydra` node was composed from (`hydra.sweeper` is an `OptunaSweeperConf`). Unpickled in a step,
each would need its plugin in the image, although the job composes nothing: composition was
done before staging. So what is staged carries the ConfigStore's entries outside Hydra's own
`hydra` group (the app's), which the step merges into its own store, and the job's `hydra`
node with other plugins' config classes turned into plain nodes of the same values.
"""

from __future__ import annotations

from typing import Any, Dict

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

HYDRA_GROUP = "hydra"
# Config classes a step always has: Hydra's own, and this plugin's.
_STEP_MODULES = ("hydra.", "hydra_plugins.hydra_vertex_pipeline_launcher.")


def app_entries(store: ConfigStore) -> Dict[str, Any]:
    """The store's entries a job may still use: all but the `hydra` group (Hydra's own
    configs, and the options of every installed Hydra plugin), which only composition reads."""
    return {key: entries for key, entries in store.repo.items() if key != HYDRA_GROUP}


def step_config_store(entries: Dict[str, Any]) -> ConfigStore:
    """The step's own ConfigStore, with the app's entries as the launcher had them."""
    store = ConfigStore.instance()
    store.repo.update(entries)
    return store


def reduce_config_store(store: ConfigStore) -> Any:
    """How a ConfigStore pickles for a step (a pickler's reducer_override)."""
    return step_config_store, (app_entries(store),)


def plain_plugin_nodes(sweep_config: DictConfig) -> None:
    """Every node under `hydra` typed by another plugin's config class becomes a plain node of
    the same values, in place: a step then needs none of those plugins."""
    _make_plain(sweep_config.hydra)


def _make_plain(node: DictConfig) -> None:
    content = node.__dict__["_content"]
    for key, child in content.items():
        if not isinstance(child, DictConfig) or child._is_missing() or child._is_none():
            continue
        if _step_has(child._metadata.object_type):
            if child._metadata.object_type in (None, dict):
                _make_plain(child)  # a plain node may still hold typed ones
            continue
        values = OmegaConf.to_container(child, resolve=False, enum_to_str=True)
        plain = OmegaConf.create(values)
        plain._set_parent(node)
        plain._set_key(key)
        content[key] = plain


def _step_has(config_class: Any) -> bool:
    if config_class in (None, dict):
        return True
    return f"{config_class.__module__}.".startswith(_STEP_MODULES)
