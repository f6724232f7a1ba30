"""An app whose own hydra/launcher option extends vertex_pipeline_local (own_launcher_conf)."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path="own_launcher_conf", config_name="config")
def main(cfg: DictConfig) -> int:
    return int(cfg.x) * 10


if __name__ == "__main__":
    main()
