"""The benchmarks' slow app: the trivial app's config, each job sleeping `seconds` first (a run
that is still going when it is cancelled)."""

import time

import hydra
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    time.sleep(float(cfg.get("seconds", 0)))
    return float(cfg.x) * cfg.scale


if __name__ == "__main__":
    main()
