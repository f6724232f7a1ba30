"""Records how it was started (argv[0]) and where its package lives, in its output dir."""

import json
import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

log = logging.getLogger(__name__)


@hydra.main(version_base=None, config_path=None)
def main(cfg: DictConfig) -> int:
    log.info(f"console app job with x={cfg.x}")
    started = {"argv0": sys.argv[0], "package": str(Path(__file__).parent), "x": cfg.x}
    Path(HydraConfig.get().runtime.output_dir, "started.json").write_text(json.dumps(started))
    return int(cfg.x) * 10
