"""The benchmarks' trivial app: a small config, a float back."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    return float(cfg.x) * cfg.scale


if __name__ == "__main__":
    main()
