"""Writes a file and logs; the job with x=2 raises."""

import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

log = logging.getLogger(__name__)


@hydra.main(version_base=None, config_path=None)
def main(cfg: DictConfig) -> int:
    log.info(f"job with x={cfg.x} starts")
    Path(HydraConfig.get().runtime.output_dir, "artifact.txt").write_text(f"x={cfg.x}\n")
    if cfg.x == 2:
        raise ValueError(f"x={cfg.x} is not allowed here")
    return cfg.x * 10


if __name__ == "__main__":
    main()
