"""Writes the job's hydra.job.id and hydra.job.num, with their types, to ids.json."""

import json
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf


@hydra.main(version_base=None, config_path=None)
def main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    seen = {}
    for key in ("id", "num"):
        value = OmegaConf.select(hydra_cfg, f"job.{key}", throw_on_missing=False)
        seen[key] = [repr(value), type(value).__name__]
    Path(hydra_cfg.runtime.output_dir, "ids.json").write_text(json.dumps(seen))


if __name__ == "__main__":
    main()
