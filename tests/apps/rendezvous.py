"""Each job records its pid and when it started and ended, and can wait for its siblings.

+wait_for=N: a job waits until N jobs have started (a rendezvous that only concurrency passes).
+sleep=S: then sleeps S seconds (+slow_from=X: only jobs with x >= X do).
"""

import json
import os
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path=None)
def main(cfg: DictConfig) -> int:
    board = Path(cfg.board)
    board.mkdir(parents=True, exist_ok=True)
    me = board / f"{cfg.x}.json"
    record = {"pid": os.getpid(), "start": time.time()}
    me.write_text(json.dumps(record))
    deadline = time.time() + 60
    while len(list(board.glob("*.json"))) < cfg.get("wait_for", 0):
        if time.time() > deadline:
            raise TimeoutError("the other jobs never started alongside this one")
        time.sleep(0.05)
    if cfg.x >= cfg.get("slow_from", 0):
        time.sleep(cfg.get("sleep", 0))
    record["end"] = time.time()
    me.write_text(json.dumps(record))
    return cfg.x


if __name__ == "__main__":
    main()
