"""Writes artifact.txt and returns x * 10; the job with x == +fail_x raises while the file
+fixed does not exist (the test "fixes the cause" by creating it)."""

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path=None)
def main(cfg: DictConfig) -> int:
    Path(HydraConfig.get().runtime.output_dir, "artifact.txt").write_text(f"x={cfg.x}\n")
    if cfg.x == cfg.get("fail_x") and not Path(cfg.fixed).exists():
        raise RuntimeError(f"x={cfg.x} needs {cfg.fixed}")
    return cfg.x * 10


if __name__ == "__main__":
    main()
