"""Writes a file and logs, then fails as +fault says: exit (sys.exit(3)), kill (SIGKILL to
itself), hang (sleeps +hang_for seconds, 120 by default), lock (returns a threading.Lock);
none returns x * 10."""

import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def task(cfg: DictConfig) -> Any:
    log.info(f"job with fault={cfg.fault} starts")
    Path(HydraConfig.get().runtime.output_dir, "before.txt").write_text(f"fault={cfg.fault}\n")
    if cfg.fault == "exit":
        sys.exit(3)
    if cfg.fault == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if cfg.fault == "hang":
        time.sleep(cfg.get("hang_for", 120))
    if cfg.fault == "lock":
        return threading.Lock()
    return cfg.x * 10


@hydra.main(version_base=None, config_path=None)
def main(cfg: DictConfig) -> Any:
    return task(cfg)


if __name__ == "__main__":
    main()
