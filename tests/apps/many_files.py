"""Writes +files=N small files into out/ of its output dir, so that collecting it takes a while."""

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path=None)
def main(cfg: DictConfig) -> int:
    out = Path(HydraConfig.get().runtime.output_dir, "out")
    out.mkdir()
    for i in range(cfg.files):
        (out / f"{i}.txt").write_text(f"file {i} of job x={cfg.x}\n")
    return cfg.files


if __name__ == "__main__":
    main()
