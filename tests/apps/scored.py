"""An app that returns a dict of numbers, as a training script reports its metrics.

lr and layers are the knobs; fail_lr=X: the job with lr=X raises; sleep=S: each job sleeps S
seconds first; go=PATH: each job waits until PATH exists.
"""

import time
from pathlib import Path

import hydra
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path=None, config_name=None)
def main(cfg: DictConfig) -> dict:
    time.sleep(cfg.get("sleep", 0))
    while cfg.get("go") and not Path(cfg.go).exists():
        time.sleep(0.05)
    lr, layers = float(cfg.lr), int(cfg.get("layers", 1))
    if cfg.get("fail_lr") is not None and lr == float(cfg.fail_lr):
        raise ValueError(f"lr={lr} diverged")
    loss = (lr - 0.1) ** 2 + 0.01 * layers
    return {"loss": round(loss, 6), "accuracy": round(1 - loss, 6), "layers": layers}


if __name__ == "__main__":
    main()
