"""Logs a line, waits for a go-file (+go=PATH), logs another; records where it ran."""

import json
import logging
import os
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_original_cwd
from omegaconf import DictConfig

log = logging.getLogger(__name__)


@hydra.main(version_base=None, config_path=None)
def main(cfg: DictConfig) -> str:
    log.info(f"step 1 of job x={cfg.x}")
    output_dir = HydraConfig.get().runtime.output_dir
    where = {"original_cwd": get_original_cwd(), "cwd": os.getcwd(), "output_dir": output_dir}
    Path(output_dir, "where.json").write_text(json.dumps(where))
    deadline = time.time() + 60
    while cfg.get("go") and not Path(cfg.go).exists() and time.time() < deadline:
        time.sleep(0.1)
    log.info(f"step 2 of job x={cfg.x}")
    return f"done {cfg.x}"


if __name__ == "__main__":
    main()
