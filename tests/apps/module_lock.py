"""Its task uses a lock made at module level, which cannot be pickled for a step."""

import threading

import hydra
from omegaconf import DictConfig

LOCK = threading.Lock()


@hydra.main(version_base=None, config_path=None)
def main(cfg: DictConfig) -> int:
    with LOCK:
        return int(cfg.x)


if __name__ == "__main__":
    main()
