"""An app with a conf dir whose `model` group sizes each job's step (sized_conf/config.yaml).

+board: each job records when it started and ended there; sleep=S: it sleeps S seconds first;
fail_seed=N: the job with seed=N raises.
"""

import json
import logging
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

log = logging.getLogger(__name__)


@hydra.main(version_base=None, config_path="sized_conf", config_name="config")
def main(cfg: DictConfig) -> str:
    start = time.time()
    log.info(f"job with model={cfg.model.name} seed={cfg.seed} starts")
    time.sleep(cfg.sleep)
    if cfg.board:
        board = Path(cfg.board)
        board.mkdir(parents=True, exist_ok=True)
        span = {"start": start, "end": time.time()}
        (board / f"{HydraConfig.get().job.num}.json").write_text(json.dumps(span))
    if cfg.seed == cfg.fail_seed:
        raise ValueError(f"seed={cfg.seed} fails here")
    return f"{cfg.model.name}-{cfg.seed}"


if __name__ == "__main__":
    main()
