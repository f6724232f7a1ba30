"""Instantiates its own class, imports a module found only on the step's extra PYTHONPATH, and
fails for x=2, as a user's app would."""

import json
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig


class Scaler:
    def __init__(self, factor: int) -> None:
        self.factor = factor


@hydra.main(version_base=None, config_path=None)
def main(cfg: DictConfig) -> int:
    import extra_helper  # only on hydra.launcher.env.PYTHONPATH

    scaler = instantiate({"_target_": "__main__.Scaler", "factor": 10})
    if cfg.x == 2:
        raise ValueError(f"x={cfg.x} is refused by {extra_helper.NAME}")
    value = extra_helper.scale(cfg.x, scaler.factor)
    Path(HydraConfig.get().runtime.output_dir, "value.json").write_text(json.dumps(value))
    return value


if __name__ == "__main__":
    main()
