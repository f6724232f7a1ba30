"""Writes `rows` rows into the file `data` (an output artifact path), with every value it got
and the type Hydra parsed it as; fails if `fail` is true.

An ordinary Hydra app: its config is a plain dict, so each override keeps the type Hydra's
override parser gives it.
"""

import json
import logging
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)
ConfigStore.instance().store(
    name="make_rows",
    node={
        "rows": 1,
        "scale": 1.0,
        "label": "none",
        "shuffle": False,
        "tags": [],
        "fail": False,
        "data": "rows.json",
    },
)


@hydra.main(version_base=None, config_path=None, config_name="make_rows")
def main(cfg: DictConfig) -> None:
    if cfg.fail:
        raise RuntimeError("make_rows was told to fail")
    values = OmegaConf.to_container(cfg)
    assert isinstance(values, dict)
    received = {key: [value, type(value).__name__] for key, value in values.items()}
    rows = [{"x": i * cfg.scale, "label": cfg.label} for i in range(cfg.rows)]
    Path(cfg.data).write_text(json.dumps({"received": received, "rows": rows}))
    print(f"make_rows printed: {cfg.rows} rows")
    log.info(f"make_rows logged: {cfg.rows} rows")


if __name__ == "__main__":
    main()
