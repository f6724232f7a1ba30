"""Counts its own attempts on +board=DIR. The first attempt writes first.txt and raises; the
second kills itself (+then=kill), raises (+then=raise) or returns (+then=succeed)."""

import os
import signal
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path=None)
def main(cfg: DictConfig) -> str:
    board = Path(cfg.board)
    board.mkdir(parents=True, exist_ok=True)
    attempt = len(list(board.iterdir())) + 1
    (board / f"attempt-{attempt}").touch()
    if attempt == 1:
        Path(HydraConfig.get().runtime.output_dir, "first.txt").write_text("attempt 1\n")
        raise ValueError("attempt 1 fails")
    if cfg.then == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if cfg.then == "raise":
        raise ValueError(f"attempt {attempt} fails too")
    return f"attempt {attempt} succeeded"


if __name__ == "__main__":
    main()
