"""Runs in an image that holds none of its code: reports what its job saw (seen.json).

Its own config is a structured config in Hydra's ConfigStore; it pickles an instance of its
own class (model.pkl), as `torch.save(model)` would.
"""

import json
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig


@dataclass
class AppConfig:
    x: int = 1
    pickle_model: bool = False


ConfigStore.instance().store(name="in_image", node=AppConfig)


class Model:
    def __init__(self, size: int) -> None:
        self.size = size


@hydra.main(version_base=None, config_path=None, config_name="in_image")
def main(cfg: AppConfig) -> int:
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    if cfg.pickle_model:
        (output_dir / "model.pkl").write_bytes(pickle.dumps(Model(cfg.x)))
    seen = {
        "app_config_stored": ConfigStore.instance().load("in_image.yaml").name == "in_image.yaml",
        "argv": sys.argv,
    }
    (output_dir / "seen.json").write_text(json.dumps(seen))
    return cfg.x


if __name__ == "__main__":
    main()
